"""A parent joining 100 child runs, end to end: children per second and store writes per child.

``python -m benchmarks.children [STORE] [CHILDREN] [REPS]`` (default ``sqlite 100 3``)
prints one JSON object; ``python -m benchmarks --only children`` puts the
figures in the report. The parent has one step, ``ctx.run_children`` over
``CHILDREN`` runs of a one-step no-op workflow (mode ``all``), on one started
engine (``max_concurrent_runs`` 100, SQLite ``synchronous=FULL``). Timed
from ``start`` of the parent until its end event; writes are every create,
transition, claim and heartbeat the engine made meanwhile.

A child's own floor is 2 writes (its create, which leases it to this worker,
and its one step's commit). What joins add per child: the wake-up of the
parent and, when the parent is due but not yet decided, its claim and
release; wake-ups that find the parent already due write nothing.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks.completion import run_endings
from benchmarks.figures import Figure
from benchmarks.stores import CountingStore, memory, sqlite_factory
from streamline_core import Engine, StepContext
from streamline_core.store import Store

__all__ = ["measure", "parent_with_children"]

CHILD_FLOOR = 2
"""Writes a one-step child needs on its own: its create and its step's commit."""


async def noop(ctx: StepContext) -> None:
    return None


async def _once(make_store: Callable[[], Store], children: int) -> dict[str, Any]:
    store = CountingStore(make_store())
    engine = Engine(store, load_entry_point_plugins=False, max_concurrent_runs=100)
    engine.workflow("leaf", steps={"work": noop})

    async def fan(ctx: StepContext) -> None:
        await ctx.run_children([("leaf", {"i": i}) for i in range(children)])

    parent = engine.workflow("fan-out", steps={"fan": fan})
    ended = run_endings(engine)
    async with engine:
        warm = await parent.start()  # warm-up: imports, prepared statements, the index
        await asyncio.wait_for(ended(warm.id), timeout=300)
        store.writes = store.reads = 0
        t = time.perf_counter()
        run = await parent.start()
        await asyncio.wait_for(ended(run.id), timeout=300)
        elapsed = time.perf_counter() - t
        done = await engine.runs.get(run.id)
    await store.inner.close()
    assert done is not None and done.status == "done", done
    assert len(done.output) == children
    return {
        "children_per_s": children / elapsed,
        "seconds": elapsed,
        "writes_per_child": store.writes / children,
        "reads_per_child": store.reads / children,
        "writes": store.writes,
    }


def measure(kind: str = "sqlite", children: int = 100, reps: int = 3) -> dict[str, Any]:
    """Median figures over ``reps`` fresh stores of ``kind`` (``sqlite`` or ``memory``)."""
    samples = []
    with tempfile.TemporaryDirectory(prefix="streamline-bench-") as tmp:
        factory: Callable[[], Store] = sqlite_factory(tmp) if kind == "sqlite" else memory
        for _ in range(reps):
            samples.append(asyncio.run(_once(factory, children)))
    return {
        "store": kind,
        "children": children,
        "children_per_s": Figure.of(s["children_per_s"] for s in samples),
        "writes_per_child": Figure.of(s["writes_per_child"] for s in samples),
        "reads_per_child": Figure.of(s["reads_per_child"] for s in samples),
        "child_floor": CHILD_FLOOR,
    }


def parent_with_children(reps: int, children: int = 100) -> dict[str, Any]:
    """The report's section: SQLite (the figure the issue asks for) and in-memory beside it."""
    return {kind: measure(kind, children, reps) for kind in ("sqlite", "memory")}


if __name__ == "__main__":
    args = sys.argv[1:]
    result = measure(
        args[0] if args else "sqlite",
        int(args[1]) if len(args) > 1 else 100,
        int(args[2]) if len(args) > 2 else 3,
    )
    print(json.dumps(result, default=lambda f: f.__dict__, indent=2))
