"""The standard workload: runs of a 10-step no-op workflow, sequential or N in flight."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamline_core import Engine, StepContext
from streamline_core.store import Store
from streamline_testing import InMemoryStore

STEPS = 10


async def noop(ctx: StepContext) -> None:
    return None


@dataclass
class Result:
    """One scenario's figures (median of repetitions, with min and max)."""

    scenario: str
    steps_per_s: float
    lo: float
    hi: float
    writes_per_step: float

    def row(self) -> str:
        return (
            f"| {self.scenario} | {self.steps_per_s:,.0f} | {self.lo:,.0f} – {self.hi:,.0f} "
            f"| {self.writes_per_step:.2f} |"
        )


class _Counting:
    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create(self, run: Any) -> Any:
        self.writes += 1
        return await self.inner.create(run)

    async def transition(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return await self.inner.transition(*args, **kwargs)

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        runs = await self.inner.claim(*args, **kwargs)
        self.writes += len(runs)
        return runs


async def _measure(
    make_store: Callable[[], Store], runs: int, in_flight: int
) -> tuple[float, float]:
    store = _Counting(make_store())
    engine = Engine(store, load_entry_point_plugins=False, max_concurrent_runs=max(in_flight, 1))  # type: ignore[arg-type]
    wf = engine.workflow("bench", steps={f"s{i}": noop for i in range(STEPS)})
    async with engine:
        sem = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with sem:
                run = await wf.start()
                await wf.wait_for(run.id, timeout=120, poll_interval=0.5)

        t = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(runs)))
        elapsed = time.perf_counter() - t
    await store.inner.close()
    return runs * STEPS / elapsed, store.writes / (runs * STEPS)


def run_scenario(
    name: str, make_store: Callable[[], Store], runs: int, in_flight: int, reps: int = 3
) -> Result:
    """Median steps/s over ``reps`` repetitions."""
    rates = []
    writes = 0.0
    for _ in range(reps):
        rate, writes = asyncio.run(_measure(make_store, runs, in_flight))
        rates.append(rate)
    return Result(name, statistics.median(rates), min(rates), max(rates), writes)


def memory() -> Store:
    return InMemoryStore()


def sqlite_factory() -> Callable[[], Store]:
    from streamline_sqlite import SQLiteStore

    tmp = Path(tempfile.mkdtemp(prefix="streamline-bench-"))
    counter = iter(range(10**6))
    return lambda: SQLiteStore(str(tmp / f"bench-{next(counter)}.db"))
