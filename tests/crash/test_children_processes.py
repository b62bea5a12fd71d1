"""Real processes on SQLite: a worker dies between a child's end and waking its parent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from streamline_core import Engine, RunStatus, StepContext, WorkflowRun

ROOT = Path(__file__).resolve().parents[2]


def spawn(db: Path, *, die_after_child_end: bool) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("STREAMLINE_TEST_DIE_AFTER_CHILD_END", None)
    if die_after_child_end:
        env["STREAMLINE_TEST_DIE_AFTER_CHILD_END"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.crash.children_app", str(db)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def client(db: Path) -> Engine:
    return Engine(f"sqlite:///{db}", load_entry_point_plugins=False)


async def noop(ctx: StepContext) -> None:
    return None


async def start_family(db: Path) -> str:
    engine = client(db)
    wf = engine.workflow("family", steps={"call": noop, "report": noop})
    run = await wf.start()
    await engine.shutdown()
    return run.id


async def read(db: Path, run_id: str) -> tuple[WorkflowRun | None, list[WorkflowRun]]:
    engine = client(db)
    try:
        run = await engine.runs.get(run_id)
        kids = await engine.runs.find(parent_run_id=run_id)
        return run, kids.items
    finally:
        await engine.shutdown()


def test_a_parent_whose_childs_wake_up_died_with_its_worker_still_finishes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    parent_id = asyncio.run(start_family(db))
    doomed = spawn(db, die_after_child_end=True)
    assert doomed.wait(timeout=30) == 17, doomed.stderr.read() if doomed.stderr else ""
    parent, kids = asyncio.run(read(db, parent_id))
    assert parent is not None
    assert [k.status for k in kids] == [RunStatus.DONE]  # the child's end is stored ...
    assert parent.status == RunStatus.WAITING  # ... and its parent was never woken
    assert parent.wait is not None and parent.wait.kind == "children"
    assert parent.lease is None

    rescuer = spawn(db, die_after_child_end=False)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            parent, kids = asyncio.run(read(db, parent_id))
            if parent is not None and parent.is_terminal:
                break
            time.sleep(0.1)
    finally:
        rescuer.terminate()
        rescuer.wait(timeout=10)
    assert parent is not None
    assert parent.status == RunStatus.DONE
    assert parent.output == kids[0].output == f"kid 1 by {doomed.pid}"
    assert len(kids) == 1  # the child ran once, in the worker that died
