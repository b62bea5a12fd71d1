"""Three worker processes on one SQLite file share an every-second schedule: one run per second."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from streamline_core import Engine, WorkflowRun

ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("STREAMLINE_SCHEDULE_SOAK", "20"))


def spawn(db: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.crash.schedule_app", str(db)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


async def scheduled_runs(db: Path) -> list[WorkflowRun]:
    engine = Engine(f"sqlite:///{db}", load_entry_point_plugins=False)
    try:
        page = await engine.runs.find(workflow_id="every-second", limit=None)
        return page.items
    finally:
        await engine.shutdown()


def test_three_workers_start_each_second_of_an_every_second_schedule_exactly_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    workers = [spawn(db) for _ in range(3)]
    try:
        time.sleep(SECONDS / 2)
        # One worker dies holding whatever it holds (the schedule, a run): the
        # others take over once its lease expires, and catch up on time.
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait()
        time.sleep(SECONDS / 2)
    finally:
        for w in workers[1:]:
            w.send_signal(signal.SIGTERM)
        for w in workers[1:]:
            w.wait(timeout=15)
    runs = asyncio.run(scheduled_runs(db))
    times = sorted(datetime.fromisoformat(r.meta["scheduled_for"]) for r in runs)
    assert len(times) == len(set(times)), "an occurrence was started twice"
    assert len(times) >= SECONDS - 4
    assert times[-1] - times[0] == timedelta(seconds=len(times) - 1), "an occurrence was skipped"
