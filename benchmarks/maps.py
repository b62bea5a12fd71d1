"""``ctx.map`` over many items against the same work as that many steps, on SQLite (FULL).

Each scenario is one run on a fresh SQLite file: either one step that calls
``ctx.map(work, range(items), concurrency=...)``, or a workflow of ``items``
steps that each do ``work`` once. ``work`` is a no-op (``async`` and
returning at once), or a simulated 1 ms I/O call (``asyncio.sleep(0.001)``).
Figures: store writes of the run (create, transitions, claims, heartbeats)
and wall time from ``start`` to the run's end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.completion import run_endings
from benchmarks.figures import Figure
from benchmarks.stores import CountingStore, sqlite_factory
from streamline_core import Engine, StepContext

__all__ = ["compare"]

Work = Callable[[int], Awaitable[int]]


async def _noop(x: int) -> int:
    return x


async def _io(x: int) -> int:
    await asyncio.sleep(0.001)
    return x


async def _one(steps: dict[str, Any]) -> dict[str, float]:
    store = CountingStore(sqlite_factory()())
    engine = Engine(store, load_entry_point_plugins=False)
    wf = engine.workflow("bench-map", steps=steps)
    waiter = run_endings(engine)
    async with engine:
        t = time.perf_counter()
        run = await wf.start()
        await asyncio.wait_for(waiter(run.id), timeout=600)
        elapsed = time.perf_counter() - t
    done = await store.inner.get(run.id)
    await store.inner.close()
    assert done is not None and done.status == "done", done
    return {"writes": float(store.writes), "seconds": elapsed}


def _map_steps(items: int, work: Work, concurrency: int | None) -> dict[str, Any]:
    async def fan_out(ctx: StepContext) -> int:
        return len(await ctx.map(work, range(items), concurrency=concurrency))

    return {"map": fan_out}


def _many_steps(items: int, work: Work) -> dict[str, Any]:
    def step(i: int) -> Any:
        async def handler(ctx: StepContext) -> int:
            return await work(i)

        return handler

    return {f"s{i}": step(i) for i in range(items)}


def compare(items: int = 1_000, reps: int = 3) -> dict[str, Any]:
    """Writes and wall time of each scenario (median of ``reps``, with min and max)."""
    scenarios: dict[str, Callable[[], dict[str, Any]]] = {
        "map, no-op work, concurrency=None": lambda: _map_steps(items, _noop, None),
        "map, 1 ms I/O, concurrency=10": lambda: _map_steps(items, _io, 10),
        "map, 1 ms I/O, concurrency=1": lambda: _map_steps(items, _io, 1),
        f"{items:,} steps, no-op work": lambda: _many_steps(items, _noop),
        f"{items:,} steps, 1 ms I/O": lambda: _many_steps(items, _io),
    }
    out: dict[str, Any] = {"items": items, "rows": {}}
    for name, build in scenarios.items():
        samples = [asyncio.run(_one(build())) for _ in range(reps)]
        out["rows"][name] = {
            key: Figure.of(s[key] for s in samples) for key in ("writes", "seconds")
        }
    return out
