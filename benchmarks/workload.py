"""The standard workload: runs of a 10-step no-op workflow, sequential or N in flight.

``python -m benchmarks.workload STORE RUNS IN_FLIGHT`` measures one repetition
in a fresh process and prints one JSON object (the harness runs it alternately
with DBOS's equivalent, ``benchmarks/dbos_workload.py``). ``STORE`` is
``memory``, ``sqlite`` (``synchronous=FULL``), ``mongo`` (mongomock-motor) or
``postgres`` (a new table on the server of ``$STREAMLINE_BENCH_POSTGRES_URL``,
which ``python -m benchmarks`` starts: see ``benchmarks/postgres.py``).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.completion import run_endings
from benchmarks.figures import SYNCHRONOUS_NAMES, Figure
from benchmarks.stores import (
    CountingStore,
    memory,
    mongo_factory,
    postgres_factory,
    sqlite_factory,
)
from streamline_core import Engine, StepContext
from streamline_core.store import Store

__all__ = ["STEPS", "Result", "measure_once", "memory", "run_scenario", "sqlite_factory"]

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


async def _measure(make_store: Callable[[], Store], runs: int, in_flight: int) -> dict[str, Any]:
    store = CountingStore(make_store())
    engine = Engine(store, load_entry_point_plugins=False, max_concurrent_runs=max(in_flight, 1))
    wf = engine.workflow("bench", steps={f"s{i}": noop for i in range(STEPS)})
    waiter = run_endings(engine)  # the engine's own events: the harness adds no store reads
    async with engine:
        sem = asyncio.Semaphore(in_flight)

        async def one() -> None:
            async with sem:
                run = await wf.start()
                await asyncio.wait_for(waiter(run.id), timeout=120)

        await asyncio.gather(*(one() for _ in range(min(5, runs))))  # warm-up, as for DBOS
        store.writes = store.reads = 0
        database = getattr(make_store, "last", None)  # Mongo: driver calls are counted
        if database is not None:
            database.round_trips = database.bytes_sent = 0
        t, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.gather(*(one() for _ in range(runs)))
        elapsed, cpu_end = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
    durability = await _durability(store.inner)
    await store.inner.close()
    steps = runs * STEPS
    user, system = cpu_end.ru_utime - cpu.ru_utime, cpu_end.ru_stime - cpu.ru_stime
    out = {
        "steps_per_s": steps / elapsed,
        "cpu_us_per_step": (user + system) / steps * 1e6,
        "cpu_sys_us_per_step": system / steps * 1e6,
        "writes_per_step": store.writes / steps,
        "reads_per_step": store.reads / steps,
        **durability,
    }
    if database is not None:
        out["round_trips_per_step"] = database.round_trips / steps
        out["bytes_sent_per_step"] = database.bytes_sent / steps
    return out


async def _durability(store: Any) -> dict[str, Any]:
    """journal_mode and synchronous as the SQLite store's own write connection has them
    (PostgreSQL: the server's synchronous_commit and fsync)."""
    if hasattr(store, "channel"):  # PostgresStore
        from benchmarks.postgres import server_durability

        return await server_durability(store)
    path = getattr(store, "path", None)
    if not isinstance(path, str):
        return {}
    out: dict[str, Any] = {"sqlite_version": sqlite3.sqlite_version}
    try:  # the writer's connection: synchronous is per connection, not stored in the file
        writer = store._writer
        out["journal_mode"] = await writer.run(
            lambda c: c.execute("PRAGMA journal_mode").fetchone()[0]
        )
        level = await writer.run(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        out["synchronous"] = SYNCHRONOUS_NAMES.get(level, str(level))
    except Exception:  # internals moved: fall back to the file (journal) and the setting
        with sqlite3.connect(path) as conn:
            out["journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
        out["synchronous"] = "FULL (as configured)"
    return out


def measure_once(kind: str, runs: int, in_flight: int) -> dict[str, Any]:
    """One repetition on a fresh store of ``kind`` (memory, sqlite, mongo, postgres)."""
    with tempfile.TemporaryDirectory(prefix="streamline-bench-") as tmp:
        factories: dict[str, Callable[[], Callable[[], Store]]] = {
            "memory": lambda: memory,
            "sqlite": lambda: sqlite_factory(tmp),
            "mongo": mongo_factory,
            "postgres": postgres_factory,
        }
        return asyncio.run(_measure(factories[kind](), runs, in_flight))


def run_scenario(
    name: str, make_store: Callable[[], Store], runs: int, in_flight: int, reps: int = 3
) -> Result:
    """Median steps/s over ``reps`` repetitions in this process."""
    samples = [asyncio.run(_measure(make_store, runs, in_flight)) for _ in range(reps)]
    rate = Figure.of(s["steps_per_s"] for s in samples)
    return Result(name, rate.median, rate.lo, rate.hi, samples[-1]["writes_per_step"])


if __name__ == "__main__":
    kind, runs, in_flight = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(measure_once(kind, runs, in_flight)))
