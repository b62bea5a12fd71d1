"""Real processes on one PostgreSQL server: three workers share runs, one is SIGKILLed.

Mirrors ``test_sqlite_processes.py`` on the test run's own server (each test
a table of its own): the killed worker's leases expire, the others take its
runs over, and every step of every run ends up committed exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from streamline_core import Engine, RunStatus, StepContext
from tests.postgres.server import drop_table, server_url

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("one", "two", "three")


def _url(table: str) -> str:
    base = server_url()
    return f"{base}{'&' if '?' in base else '?'}table={table}"


def spawn(url: str, log: Path, lease: float, slots: int, n: int) -> list[subprocess.Popen[str]]:
    """``n`` workers, started side by side (each imports the engine: seconds on a busy box)."""
    argv = [sys.executable, "-m", "tests.crash.worker_app", url, str(log), str(lease), str(slots)]
    out, quiet = subprocess.PIPE, subprocess.DEVNULL  # a piped stderr nobody reads can fill up
    procs = [
        subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=quiet, text=True) for _ in range(n)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return procs


def executions(log: Path) -> Counter[tuple[str, str, str]]:
    if not log.exists():
        return Counter()
    return Counter(tuple(line.split()) for line in log.read_text().splitlines())  # type: ignore[misc]


async def noop(ctx: StepContext) -> None:
    return None


async def start_runs(url: str, n: int) -> list[str]:
    engine = Engine(url, load_entry_point_plugins=False)
    wf = engine.workflow("bulk", steps={s: noop for s in STEPS})
    ids = [(await wf.start({"i": i})).id for i in range(n)]
    await engine.shutdown()
    return ids


async def finished(url: str, ids: list[str], timeout: float) -> list[object]:
    engine = Engine(url, load_entry_point_plugins=False)
    deadline = time.monotonic() + timeout
    try:
        while True:
            runs = [await engine.runs.get(i) for i in ids]
            if all(r is not None and r.is_terminal for r in runs) or time.monotonic() > deadline:
                return runs
            await asyncio.sleep(0.05)
    finally:
        await engine.shutdown()


def test_a_killed_worker_loses_nothing_and_no_step_commits_twice(tmp_path: Path) -> None:
    table = f"crash_{uuid.uuid4().hex[:12]}"
    url, log = _url(table), tmp_path / "exec.log"
    ids = asyncio.run(start_runs(url, 40))
    workers = spawn(url, log, lease=1.0, slots=4, n=3)
    by_pid = {str(w.pid): w for w in workers}
    doomed = workers[0]
    try:
        # The first worker seen executing a step is killed (which one gets there
        # first is up to the scheduler on a loaded machine).
        deadline = time.monotonic() + 30
        while True:
            seen = [pid for _, _, pid in executions(log) if pid in by_pid]
            if seen:
                doomed = by_pid[seen[0]]
                break
            assert time.monotonic() < deadline, "no worker ran a step"
            time.sleep(0.01)
        os.kill(doomed.pid, signal.SIGKILL)  # mid-run: it holds leases on runs in flight
        doomed.wait()
        runs = asyncio.run(finished(url, ids, timeout=60))
    finally:
        for w in workers:
            if w is not doomed:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            if w is not doomed:
                w.wait(timeout=15)
        asyncio.run(drop_table(table))
    assert [r.status for r in runs] == [RunStatus.DONE] * len(ids)  # type: ignore[attr-defined]
    counts = executions(log)
    survivors = {str(w.pid) for w in workers if w is not doomed}
    for run in runs:
        for step in run.steps:  # type: ignore[attr-defined]
            committer = step.output.rsplit(" ", 1)[1]
            # The committed result's execution happened once; a survivor never
            # re-ran a step someone committed; only the dead worker's
            # uncommitted executions were repeated.
            assert counts[(run.id, step.step_id, committer)] == 1  # type: ignore[attr-defined]
            for pid in survivors - {committer}:
                assert counts[(run.id, step.step_id, pid)] == 0, (run.id, step.step_id)  # type: ignore[attr-defined]
    assert sum(counts.values()) >= len(ids) * len(STEPS)
