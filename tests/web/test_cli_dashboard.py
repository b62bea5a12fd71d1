"""``streamline dashboard``: refuses an exposed host without a token, one-line errors, serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from streamline_cli import app
from streamline_cli.dashboard import is_loopback

STREAMLINE = str(Path(sys.executable).parent / "streamline")


def _one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_a_reachable_host_needs_a_token(host: str) -> None:
    result = CliRunner().invoke(app, ["dashboard", "--host", host, "--store", "memory://"])
    assert result.exit_code == 2
    assert "--token" in _one_line_error(result.output)


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "host.example"))


def test_a_busy_port_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["dashboard", "--store", "memory://", "--port", str(port)])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in _one_line_error(result.output)


def test_an_empty_token_and_a_bad_app_are_usage_errors() -> None:
    empty = CliRunner().invoke(app, ["dashboard", "--store", "memory://", "--token", " "])
    assert empty.exit_code == 2 and "token" in _one_line_error(empty.output)
    bad = CliRunner().invoke(app, ["dashboard", "--app", "no_such_module_here:engine"])
    assert bad.exit_code == 2 and "no module named" in _one_line_error(bad.output)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serves_the_api_with_a_token_until_interrupted(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "STREAMLINE_DASHBOARD_TOKEN": "t0ken"}
    proc = subprocess.Popen(
        [STREAMLINE, "dashboard", "--store", "memory://", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "dashboard did not start"
            time.sleep(0.05)
        assert httpx.get(f"{base}/api/runs").status_code == 401
        ok = httpx.get(f"{base}/api/runs", headers={"Authorization": "Bearer t0ken"})
        assert ok.json() == {"items": [], "next_cursor": None}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"dashboard on {base}/" in err and "token required" in err
    assert "Traceback" not in err
