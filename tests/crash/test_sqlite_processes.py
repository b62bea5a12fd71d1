"""Real processes on one SQLite file: SIGKILL mid-step, and three workers sharing runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from streamline_core import Engine, RunStatus, StepContext

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("one", "two", "three")


def spawn(db: Path, log: Path, lease: float = 2.0, slots: int = 100) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.crash.worker_app", str(db), str(log), str(lease), str(slots)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def executions(log: Path) -> Counter[tuple[str, str]]:
    if not log.exists():
        return Counter()
    return Counter(
        (run, step) for run, step, _pid in (line.split() for line in log.read_text().splitlines())
    )


def client(db: Path) -> Engine:
    return Engine(f"sqlite:///{db}", load_entry_point_plugins=False)


async def noop(ctx: StepContext) -> None:
    return None


async def start_runs(db: Path, workflow: str, n: int) -> list[str]:
    engine = client(db)
    wf = engine.workflow(workflow, steps={s: noop for s in STEPS})
    ids = [(await wf.start({"i": i})).id for i in range(n)]
    await engine.shutdown()
    return ids


async def wait_done(db: Path, ids: list[str], timeout: float) -> list[RunStatus]:
    engine = client(db)
    deadline = time.monotonic() + timeout
    try:
        while True:
            runs = [await engine.runs.get(i) for i in ids]
            if all(r is not None and r.is_terminal for r in runs) or time.monotonic() > deadline:
                return [r.status for r in runs if r is not None]
            await asyncio.sleep(0.05)
    finally:
        await engine.shutdown()


def test_a_worker_killed_mid_step_is_recovered_by_another_process(tmp_path: Path) -> None:
    db, log = tmp_path / "runs.db", tmp_path / "exec.log"
    hang = Path(str(db) + ".hang")
    hang.touch()
    (run_id,) = asyncio.run(start_runs(db, "crashy", 1))
    doomed = spawn(db, log)
    deadline = time.monotonic() + 20
    while executions(log)[(run_id, "two")] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert executions(log)[(run_id, "two")] == 1
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    hang.unlink()
    rescuer = spawn(db, log)
    try:
        statuses = asyncio.run(wait_done(db, [run_id], timeout=30))
    finally:
        rescuer.send_signal(signal.SIGTERM)
        rescuer.wait(timeout=10)
    assert statuses == [RunStatus.DONE]
    counts = executions(log)
    assert [counts[(run_id, s)] for s in STEPS] == [1, 2, 1]

    async def check() -> None:
        engine = client(db)
        run = await engine.runs.get(run_id)
        await engine.shutdown()
        assert run is not None
        assert run.recoveries >= 1
        assert run.lease is None
        assert run.steps[1].output == f"two by {rescuer.pid}"

    asyncio.run(check())


def test_three_workers_execute_every_step_of_60_runs_exactly_once(tmp_path: Path) -> None:
    db, log = tmp_path / "runs.db", tmp_path / "exec.log"
    # Every worker is up before the runs exist, so a slow start under load does
    # not leave one worker alone with all the work.
    workers = [spawn(db, log, lease=5.0, slots=4) for _ in range(3)]
    try:
        ids = asyncio.run(start_runs(db, "bulk", 60))
        statuses = asyncio.run(wait_done(db, ids, timeout=60))
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=10)
    assert statuses == [RunStatus.DONE] * 60
    counts = executions(log)
    assert all(counts[(r, s)] == 1 for r in ids for s in STEPS), counts.most_common(3)
    assert sum(counts.values()) == 180
    pids = {line.split()[2] for line in log.read_text().splitlines()}
    assert len(pids) >= 2  # the work was actually shared


def test_a_worker_that_loses_its_heartbeats_stops_its_step(tmp_path: Path) -> None:
    import sqlite3

    db, log = tmp_path / "runs.db", tmp_path / "exec.log"
    soak_log = Path(str(log) + ".soak")

    async def start_one() -> str:
        engine = client(db)
        wf = engine.workflow("stubborn", steps={"hold": noop})
        run_id = (await wf.start()).id
        await engine.shutdown()
        return run_id

    run_id = asyncio.run(start_one())
    worker = spawn(db, log, lease=1.5)
    try:
        deadline = time.monotonic() + 20
        while not (soak_log.exists() and "stubborn" in soak_log.read_text()):
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.02)
        # Take the database away from the worker: its heartbeats hang on the lock.
        blocker = sqlite3.connect(db, isolation_level=None, timeout=10)
        blocker.execute("BEGIN EXCLUSIVE")
        locked_at = time.time()
        try:
            deadline = time.monotonic() + 10
            while "stubborn-signal" not in soak_log.read_text():
                assert time.monotonic() < deadline, "the step kept running without its lease"
                time.sleep(0.02)
            stopped_at = float(soak_log.read_text().split("stubborn-signal")[1].split()[1])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=15)
    assert "stubborn-signal=True" in soak_log.read_text()  # ctx.signal was set
    assert stopped_at - locked_at < 1.5 + 0.5  # by the lease's expiry on its own clock
    assert run_id
