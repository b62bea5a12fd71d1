"""Soak: 4 worker processes, 500 runs, random SIGKILLs and restarts.

Checks that every run completes, every step's output is committed exactly
once (by an execution that really finished), and that no two executions of
one run ever overlap in time across workers.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from streamline_core import RunStatus
from tests.crash.test_sqlite_processes import STEPS, client, spawn, start_runs

RUNS = int(os.environ.get("STREAMLINE_SOAK_RUNS", "500"))
WORKERS = 4
LEASE = 1.0


def test_four_workers_with_random_kills_complete_every_run_exactly_once(tmp_path: Path) -> None:
    db, log = tmp_path / "runs.db", tmp_path / "exec.log"
    rng = random.Random(int(os.environ.get("STREAMLINE_SOAK_SEED", "7")))
    ids = asyncio.run(start_runs(db, "soak", RUNS))
    started = time.monotonic()
    workers: list[subprocess.Popen[str]] = [spawn(db, log, LEASE, 4) for _ in range(WORKERS)]
    killed_at: dict[str, float] = {}
    kills = 0

    async def progress() -> int:
        engine = client(db)
        n = await engine.runs.count(workflow_id="soak", status="done")
        await engine.shutdown()
        return n

    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = asyncio.run(progress())
            if done == RUNS:
                break
            if kills < 12 and rng.random() < 0.7:
                victim = rng.randrange(WORKERS)
                proc = workers[victim]
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                killed_at[str(proc.pid)] = time.time()
                kills += 1
                workers[victim] = spawn(db, log, LEASE, 4)
            time.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=15)
    elapsed = time.monotonic() - started

    async def final() -> list[object]:
        engine = client(db)
        runs = [await engine.runs.get(i) for i in ids]
        await engine.shutdown()
        return runs

    runs = asyncio.run(final())
    assert all(r is not None and r.status == RunStatus.DONE for r in runs)  # type: ignore[attr-defined]

    starts: dict[str, tuple[str, str, float]] = {}
    ends: dict[str, float] = {}
    for line in Path(str(log) + ".soak").read_text().splitlines():
        kind, run_id, step, token, at = line.split()
        if kind == "S":
            starts[token] = (run_id, step, float(at))
        else:
            ends[token] = float(at)

    # Every committed output names an execution that really ran to its end.
    for run in runs:
        for s in run.steps:  # type: ignore[attr-defined]
            assert s.output in ends, (run.id, s.step_id)  # type: ignore[attr-defined]
            assert starts[s.output][:2] == (run.id, s.step_id)  # type: ignore[attr-defined]

    # Executions of one run never overlap (a killed one ends at its kill).
    by_run: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for token, (run_id, _step, t0) in starts.items():
        pid = token.split("-")[0]
        t1 = ends.get(token, killed_at.get(pid, float("inf")))
        by_run[run_id].append((t0, t1))
    for spans in by_run.values():
        spans.sort()
        for (_, end_a), (start_b, _) in itertools.pairwise(spans):
            assert end_a <= start_b

    duplicates = sum(len(v) for v in by_run.values()) - RUNS * len(STEPS)
    recoveries = sum(r.recoveries for r in runs)  # type: ignore[attr-defined]
    print(
        f"\nsoak: runs={RUNS} workers={WORKERS} kills={kills} recoveries={recoveries} "
        f"re-executions={duplicates} wall={elapsed:.1f}s"
    )
