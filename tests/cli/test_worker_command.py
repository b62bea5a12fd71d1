"""``streamline worker``: runs an engine, logs, and drains cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
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
    # SIGTERM only once the worker has committed a step and printed a status
    # line (its handlers are in place): a fixed sleep is too short under load.
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        text = "".join(seen)
        if "event=step:completed" in text and "status worker=" in text:
            break
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=30)
    err = "".join(seen) + rest
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


FAILING_APP = textwrap.dedent(
    """
    import os
    from streamline_core import Engine, Retry, StepConfig

    engine = Engine(os.environ["APP_STORE"], min_poll_interval=0.02, max_poll_interval=0.1)

    def charge_card(order):
        raise ValueError(f"card declined for order {order}")

    async def charge(ctx):
        charge_card(ctx.input["order"])

    retry = Retry(attempts=3, delay=0.05, backoff="fixed", jitter=0)
    engine.workflow("billing", steps={"charge": StepConfig(charge, retry=retry)})
    """
)


def worker_log_of_a_failing_run(tmp_path: Path, *flags: str) -> tuple[str, str]:
    """Run the worker until a run that fails every attempt has failed; its id and stderr."""
    (tmp_path / "billingapp.py").write_text(FAILING_APP)
    store = f"sqlite:///{tmp_path / 'billing.db'}"

    async def charge(ctx: StepContext) -> None:
        return None

    async def enqueue() -> str:
        client = Engine(store, load_entry_point_plugins=False)
        run = await client.workflow("billing", steps={"charge": charge}).start({"order": 7})
        await client.shutdown()
        return run.id

    async def status() -> RunStatus | None:
        client = Engine(store, load_entry_point_plugins=False)
        run = await client.runs.get(run_id)
        await client.shutdown()
        return None if run is None else run.status

    run_id = asyncio.run(enqueue())
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamline_cli", "worker", "billingapp:engine", *flags],
        cwd=tmp_path,
        env={**os.environ, "APP_STORE": store},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while asyncio.run(status()) != RunStatus.FAILED and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)  # let the last lines reach the log
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert asyncio.run(status()) == RunStatus.FAILED, err
    return run_id, err


def test_worker_logs_one_line_per_retry_and_the_traceback_once(tmp_path: Path) -> None:
    run_id, err = worker_log_of_a_failing_run(tmp_path, "--status-interval", "0")
    lines = err.splitlines()
    retries = [line for line in lines if "event=step:retry-scheduled" in line]
    assert len(retries) == 2, err
    for attempt, line in enumerate(retries, start=1):
        assert " WARNING streamline.worker " in line
        assert f"run={run_id} workflow=billing step=charge attempt={attempt} delay=0.05s" in line
        assert line.endswith('error="ValueError: card declined for order 7"'), line
    # The other events about the same failed attempt are not logged again.
    assert "event=step:failed" not in err
    assert "event=workflow:retry" not in err
    # Nor is the engine's own record of each attempt (its header and traceback).
    assert "streamline.run" not in err
    assert "will retry" not in err and "giving up" not in err

    failed = [i for i, line in enumerate(lines) if "event=workflow:failed" in line]
    assert len(failed) == 1, err
    header = lines[failed[0]]
    assert " ERROR streamline.worker " in header
    assert f"run={run_id} workflow=billing step=charge attempts=3" in header
    assert "code=MAX_RETRIES_EXCEEDED" in header
    assert "card declined for order 7" in header
    # The traceback, once, indented under the line of the failure it explains.
    assert err.count("Traceback (most recent call last):") == 1
    body = []
    for line in lines[failed[0] + 1 :]:
        if not line.startswith("    "):
            break
        body.append(line)
    assert body[0] == "    Traceback (most recent call last):", err
    assert any("in charge_card" in line for line in body)
    assert body[-1] == "    ValueError: card declined for order 7"


def test_quiet_worker_leaves_failures_to_the_engines_log(tmp_path: Path) -> None:
    run_id, err = worker_log_of_a_failing_run(tmp_path, "--status-interval", "0", "--quiet")
    assert "event=" not in err
    records = [line for line in err.splitlines() if " streamline.run " in line]
    assert len(records) == 3, err
    assert all(f"run {run_id} step 'charge'" in line for line in records)
    assert [" WARNING " in line for line in records] == [True, True, False]
    assert " ERROR " in records[-1] and "giving up" in records[-1]
    assert err.count("Traceback (most recent call last):") == 3


def test_only_the_engines_failure_records_are_left_out() -> None:
    from streamline_cli.app import _logfmt, _StepFailureRecords

    def record(name: str, exc: bool, **extra: str) -> logging.LogRecord:
        made = logging.LogRecord(name, logging.WARNING, __file__, 1, "m", None, None)
        if exc:
            try:
                raise ValueError("x")
            except ValueError:
                made.exc_info = sys.exc_info()
        made.__dict__.update(extra)
        return made

    keep = _StepFailureRecords().filter
    assert not keep(record("streamline.run", True, run_id="r", step_id="s"))
    assert keep(record("streamline.run", False, run_id="r", step_id="s"))  # ctx.log
    assert keep(record("streamline.engine", True))  # an engine error keeps its traceback
    assert keep(record("myapp", True, step_id="s"))
    assert _logfmt("plain") == "plain"
    assert _logfmt('two\nlines "quoted"') == '"two\\nlines \\"quoted\\""'
