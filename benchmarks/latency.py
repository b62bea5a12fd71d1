"""Start-to-first-step latency in one process: from calling ``await wf.start()`` on a
started engine to the first handler running.

Runs are started one at a time, each after the previous one ended, so the
figure is the latency of an idle engine, not of a queue. On SQLite it
includes the create's commit (one fsync), which ``start`` returns after.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable

from benchmarks.completion import run_endings
from benchmarks.figures import Figure, percentile
from benchmarks.stores import memory, sqlite_factory
from streamline_core import Engine, StepContext
from streamline_core.store import Store


async def _samples(make_store: Callable[[], Store], n: int, warmup: int = 5) -> list[float]:
    store = make_store()
    engine = Engine(store, load_entry_point_plugins=False)
    first_at: dict[str, float] = {}
    waiter = run_endings(engine)

    async def first(ctx: StepContext) -> None:
        first_at[ctx.run_id] = time.perf_counter()

    async def second(ctx: StepContext) -> None:
        return None

    wf = engine.workflow("latency", steps={"first": first, "second": second})
    out: list[float] = []
    async with engine:
        for i in range(warmup + n):
            t = time.perf_counter()
            run = await wf.start()
            await asyncio.wait_for(waiter(run.id), timeout=60)
            # Idle again before the next start: the ended run's wrap-up (its
            # last events, the claim poll for the freed slot) is not the
            # next start's latency.
            await asyncio.sleep(0.002)
            if i >= warmup:
                out.append((first_at[run.id] - t) * 1000)
    await store.close()
    return out


def first_step(kind: str, n: int = 200, reps: int = 3) -> dict[str, Figure]:
    """p50 and p99 in milliseconds (each the median over ``reps`` repetitions of ``n`` runs)."""
    p50, p99 = [], []
    for _ in range(reps):
        with tempfile.TemporaryDirectory(prefix="streamline-latency-") as tmp:
            make = memory if kind == "memory" else sqlite_factory(tmp)
            samples = asyncio.run(_samples(make, n))
        p50.append(percentile(samples, 50))
        p99.append(percentile(samples, 99))
    return {"p50_ms": Figure.of(p50), "p99_ms": Figure.of(p99)}
