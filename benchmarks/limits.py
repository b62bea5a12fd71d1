"""Flow control: claim latency with a per-key limited queue, and a limited workload's throughput.

Claim latency (SQLite, optionally PostgreSQL): a queue of ``queued`` due runs
over ``keys`` keys with ``Concurrency(limit=1)``, against the same queue
without limits (plain ``claim``). Three limited cases:

* ``free``: every bucket has its slot free. Claims lease with ``lease_for=0``
  at a ``now`` one millisecond after the previous claim's, so the runs they
  took are claimable again at once; each such claim also revokes the leases
  the previous claim left behind (expired at once), so it pays that too.
* ``full``: one run per key holds its slot (a long lease): every claim walks
  the whole queue, finds no bucket with room, and leases nothing — the worst
  case of a busy limited queue.

Throughput: ``runs`` two-step runs over ``keys`` keys, ``limit`` per key, on
one started engine (SQLite file), against the same runs unlimited.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.claims import queued_run
from benchmarks.completion import run_endings
from benchmarks.figures import Figure
from streamline_core import Concurrency, Engine, StepContext
from streamline_core.run import WorkflowRun
from streamline_core.store import Store

WORKFLOW = "bench"


def _limited(run: WorkflowRun, key: str) -> WorkflowRun:
    return run.model_copy(update={"concurrency_key": key, "concurrency_limit": 1})


async def _fill(store: Store, queued: int, keys: int | None) -> None:
    now = datetime.now(UTC)
    for start in range(0, queued, 500):
        batch = []
        for i in range(start, min(start + 500, queued)):
            run = queued_run(now)
            batch.append(_limited(run, f"k{i % keys}") if keys else run)
        await asyncio.gather(*(store.create(r) for r in batch))


_TICKS = itertools.count(1)


async def _time(call: Any, reps: int) -> Figure:
    samples = []
    for _ in range(reps + 3):  # the first three warm the caches
        i = next(_TICKS)  # every claim one millisecond after the previous one
        t = time.perf_counter()
        await call(i)
        samples.append((time.perf_counter() - t) * 1000)
    return Figure.of(samples[3:])


async def _claims(make: Any, queued: int, keys: int, reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"queued": queued, "keys": keys}
    plain = make("plain")
    try:
        await _fill(plain, queued, None)
        at = datetime.now(UTC) + timedelta(seconds=1)
        for n in (1, 50):

            async def claim(i: int, n: int = n) -> None:
                got = await plain.claim("w", at + timedelta(milliseconds=i + 1), 0.0, n, [WORKFLOW])
                assert len(got) == n

            out[f"plain_{n}_ms"] = await _time(claim, reps)
    finally:
        await plain.close()
    limited = make("limited")
    try:
        await _fill(limited, queued, keys)
        at = datetime.now(UTC) + timedelta(seconds=1)
        for n in (1, 50):

            async def free(i: int, n: int = n) -> None:
                now = at + timedelta(milliseconds=i + 1)
                got = await limited.claim_limited("w", now, 0.0, n, [WORKFLOW])  # type: ignore[attr-defined]
                assert len(got) == min(n, keys), len(got)

            out[f"free_{n}_ms"] = await _time(free, reps)
        at += timedelta(milliseconds=next(_TICKS) + 10_000)
        held = await limited.claim_limited("w", at, 3600.0, keys, [WORKFLOW])  # type: ignore[attr-defined]
        assert len(held) == keys

        async def full(i: int) -> None:
            now = at + timedelta(milliseconds=1)
            got = await limited.claim_limited("w", now, 0.0, 50, [WORKFLOW])  # type: ignore[attr-defined]
            assert got == []

        out["full_50_ms"] = await _time(full, reps)
    finally:
        await limited.close()
    return out


def claim_latency(
    queued: int = 10_000, keys: int = 1_000, reps: int = 30, postgres: str | None = None
) -> dict[str, Any]:
    """Median claim latency (ms): plain vs limited (free buckets, all buckets full)."""
    from streamline_sqlite import SQLiteStore

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="streamline-limits-") as tmp:
        out["sqlite"] = asyncio.run(
            _claims(lambda name: SQLiteStore(str(Path(tmp) / f"{name}.db")), queued, keys, reps)
        )
    if postgres:
        import uuid

        from streamline_postgres import PostgresStore

        def make(name: str) -> Store:
            return PostgresStore(postgres, table=f"bench_{name}_{uuid.uuid4().hex[:8]}")

        out["postgres"] = asyncio.run(_claims(make, queued, keys, reps))
    return out


async def _workload(path: str, runs: int, keys: int, limit: int | None) -> dict[str, Any]:
    from streamline_sqlite import SQLiteStore

    store = SQLiteStore(path)
    engine = Engine(store, load_entry_point_plugins=False, max_concurrent_runs=100)

    async def step(ctx: StepContext) -> None:
        await asyncio.sleep(0.001)

    options: dict[str, Any] = {}
    if limit is not None:
        options["concurrency"] = Concurrency(limit, key=lambda i: i["k"])
    wf = engine.workflow("tp", steps={"a": step, "b": step}, **options)
    waiter = run_endings(engine)
    async with engine:
        t = time.perf_counter()
        started = [await wf.start({"k": f"k{i % keys}"}) for i in range(runs)]
        await asyncio.wait_for(asyncio.gather(*(waiter(r.id) for r in started)), timeout=600)
        seconds = time.perf_counter() - t
    await store.close()
    return {"runs_per_s": runs / seconds, "seconds": seconds}


def throughput(runs: int = 500, keys: int = 50, limit: int = 2, reps: int = 3) -> dict[str, Any]:
    """Runs per second of a limited workload and of the same workload unlimited."""
    out: dict[str, Any] = {"runs": runs, "keys": keys, "limit": limit}
    for name, lim in (("unlimited", None), ("limited", limit)):
        figures = []
        for rep in range(reps):
            with tempfile.TemporaryDirectory(prefix="streamline-limits-tp-") as tmp:
                res = asyncio.run(_workload(str(Path(tmp) / f"{rep}.db"), runs, keys, lim))
                figures.append(res["runs_per_s"])
        out[f"{name}_runs_per_s"] = Figure.of(figures)
    return out


def measure(reps: int = 30, quick: bool = False, postgres: str | None = None) -> dict[str, Any]:
    """Both parts of the section (small sizes with ``quick``)."""
    if quick:
        return {
            "claims": claim_latency(200, 20, 3),
            "throughput": throughput(20, 4, 2, 1),
        }
    return {
        "claims": claim_latency(reps=reps, postgres=postgres),
        "throughput": throughput(),
    }
