"""Real processes on one SQLite file: Concurrency(2, key) holds across three workers."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

from streamline_core import RunStatus, StepContext
from tests.crash.test_sqlite_processes import client, spawn, wait_done
from tests.crash.worker_app import LIMITED_CONCURRENCY

KEYS = ("k0", "k1", "k2", "k3", "k4")


async def noop(ctx: StepContext) -> None:
    return None


async def start_limited(db: Path, n: int) -> list[str]:
    engine = client(db)
    wf = engine.workflow("limited", steps={"a": noop, "b": noop}, concurrency=LIMITED_CONCURRENCY)
    ids = [(await wf.start({"k": KEYS[i % len(KEYS)]})).id for i in range(n)]
    await engine.shutdown()
    return ids


def peak_per_key(log: Path) -> dict[str, int]:
    """The most handlers of one key executing at once, from their own start/end stamps."""
    events: list[tuple[int, int, str]] = []
    for line in log.read_text().splitlines():
        kind, key, _run, _step, _pid, ns = line.split()
        # At one instant an end is counted before a start: never a false overlap.
        events.append((int(ns), 0 if kind == "E" else 1, key))
    running: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    for _, kind, key in sorted(events):
        running[key] += 1 if kind else -1
        peak[key] = max(peak[key], running[key])
    return dict(peak)


def test_three_workers_never_run_more_than_two_handlers_of_a_key_at_once(tmp_path: Path) -> None:
    db, log = tmp_path / "runs.db", tmp_path / "exec.log"
    asyncio.run(start_limited(db, 0))  # the file and its schema, before the workers open it
    workers = [spawn(db, log, lease=5.0, slots=6) for _ in range(3)]
    try:
        # Started once every worker is up, so all three compete from the first run.
        ids = asyncio.run(start_limited(db, 200))
        statuses = asyncio.run(wait_done(db, ids, timeout=60))
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=10)
    assert statuses == [RunStatus.DONE] * 200
    stamps = Path(str(log) + ".limits")
    lines = stamps.read_text().splitlines()
    assert sum(1 for line in lines if line.startswith("S")) >= 400  # every step of every run
    peak = peak_per_key(stamps)
    assert set(peak) == set(KEYS)
    assert max(peak.values()) <= 2, peak
    assert max(peak.values()) == 2, peak  # the limit was reached: the test could have failed
    pids = {line.split()[4] for line in lines}
    assert len(pids) >= 2  # the work was shared between processes
