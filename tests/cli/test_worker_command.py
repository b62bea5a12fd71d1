"""``streamline worker``: runs an engine, logs, and drains cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from streamline_core import Engine, RunStatus, StepContext

APP = textwrap.dedent(
    """
    import asyncio, os
    from streamline_core import Engine

    engine = Engine(os.environ["APP_STORE"], min_poll_interval=0.02, max_poll_interval=0.1)

    async def slow(ctx):
        await asyncio.sleep(0.3)
        return ctx.input["i"]

    engine.workflow("jobs", steps={"one": slow, "two": slow})
    """
)


async def slow(ctx: StepContext) -> None:
    return None


def test_sigterm_drains_and_releases_every_lease(tmp_path: Path) -> None:
    (tmp_path / "jobapp.py").write_text(APP)
    store = f"sqlite:///{tmp_path / 'jobs.db'}"

    async def enqueue() -> list[str]:
        client = Engine(store, load_entry_point_plugins=False)
        wf = client.workflow("jobs", steps={"one": slow, "two": slow})
        ids = [(await wf.start({"i": i})).id for i in range(5)]
        await client.shutdown()
        return ids

    ids = asyncio.run(enqueue())
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamline_cli",
            "worker",
            "jobapp:engine",
            "--drain-timeout",
            "10",
            "--status-interval",
            "0.2",
        ],
        cwd=tmp_path,
        env={**os.environ, "APP_STORE": store},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "started worker=" in err
    assert "event=step:completed" in err
    assert "status worker=" in err
    assert "stopped; leases released" in err

    async def check() -> list[tuple[RunStatus, bool]]:
        client = Engine(store, load_entry_point_plugins=False)
        runs = [await client.runs.get(i) for i in ids]
        await client.shutdown()
        return [(r.status, r.lease is not None) for r in runs if r is not None]

    states = asyncio.run(check())
    assert len(states) == 5
    assert not any(leased for _, leased in states)  # nothing left leased
    assert all(status in (RunStatus.DONE, RunStatus.RUNNING) for status, _ in states)
    assert any(status == RunStatus.DONE for status, _ in states)


def test_a_bad_target_is_a_usage_error(tmp_path: Path) -> None:
    for target in ("nomodule", "no_such_module:engine", "os:path"):
        result = subprocess.run(
            [sys.executable, "-m", "streamline_cli", "worker", target],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2, (target, result.stderr)
        assert "Traceback" not in result.stderr
