"""Claim latency on SQLite with 1k and with 100k queued (due, unclaimed) runs.

The queue is filled through the store's own ``create``, many at a time (group
commit makes that quick), with runs shaped as ``start`` makes them: 10 pending
steps, ``running``, due now, no lease. Each measured claim leases with
``lease_for=0`` at a ``now`` one millisecond later than the previous claim's,
so the runs it took are claimable again at once and every claim sees the
full queue (re-taking an expired lease counts a recovery on the run, which
costs the same write).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure
from benchmarks.workload import STEPS
from streamline_core.run import RunStatus, StepState, WorkflowRun, new_run_id
from streamline_core.store import Store

WORKFLOW = "bench"
BATCH = 500


def queued_run(now: datetime) -> WorkflowRun:
    """A run as an unstarted client's ``start`` stores it: due now, unleased."""
    return WorkflowRun(
        id=new_run_id(now),
        workflow_id=WORKFLOW,
        status=RunStatus.RUNNING,
        current_step_id="s0",
        steps=[StepState(step_id=f"s{i}") for i in range(STEPS)],
        next_run_at=now,
        created_at=now,
        updated_at=now,
    )


async def fill(store: Store, n: int) -> float:
    """Create ``n`` queued runs, ``BATCH`` concurrent creates at a time; returns seconds taken."""
    t = time.perf_counter()
    now = datetime.now(UTC)
    for start in range(0, n, BATCH):
        batch = [queued_run(now) for _ in range(min(BATCH, n - start))]
        await asyncio.gather(*(store.create(run) for run in batch))
    return time.perf_counter() - t


async def _latencies(queued: int, reps: int, limits: tuple[int, ...]) -> dict[str, Any]:
    from streamline_sqlite import SQLiteStore

    with tempfile.TemporaryDirectory(prefix="streamline-claims-") as tmp:
        store = SQLiteStore(str(Path(tmp) / "claims.db"))
        try:
            fill_s = await fill(store, queued)
            at = datetime.now(UTC) + timedelta(seconds=1)
            out: dict[str, Any] = {"queued": queued, "fill_s": fill_s}
            for limit in limits:
                samples = []
                for _ in range(reps + 3):  # the first three warm the caches
                    at += timedelta(milliseconds=1)
                    t = time.perf_counter()
                    runs = await store.claim("bench-worker", at, 0.0, limit, [WORKFLOW])
                    samples.append((time.perf_counter() - t) * 1000)
                    assert len(runs) == min(limit, queued), len(runs)
                out[f"limit_{limit}_ms"] = Figure.of(samples[3:])
            return out
        finally:
            await store.close()


def claim_latency(
    sizes: tuple[int, int] = (1_000, 100_000), reps: int = 50, limits: tuple[int, ...] = (1, 50)
) -> dict[str, Any]:
    """Median claim latency (ms) per queue size and limit, and the large/small ratios."""
    small, large = (asyncio.run(_latencies(n, reps, limits)) for n in sizes)
    ratios = {
        f"limit_{limit}": large[f"limit_{limit}_ms"].median / small[f"limit_{limit}_ms"].median
        for limit in limits
    }
    return {"small": small, "large": large, "ratio": ratios}
