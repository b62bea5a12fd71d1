"""The PostgreSQL section: ours against DBOS on one server, pickup with NOTIFY, 1 vs 4 workers.

``python -m benchmarks --only postgres`` starts a throwaway cluster of its
own (``tests/postgres/cluster.py``: ``initdb`` in a temporary directory, a
private unix socket) with PostgreSQL's **default, durable settings**
(``fsync=on``, ``synchronous_commit=on``, ``full_page_writes=on``), or uses
the server of ``--postgres-url`` (then nothing is started). On it:

* **throughput**: the standard workload (runs of a 10-step no-op workflow),
  sequential and 50 in flight, each repetition in a fresh process: ours on
  a new table, DBOS 3.4 on a new database of the same server (its
  ``system_database_url``), alternating;
* **pickup**: a client process starts runs at random gaps, an idle worker
  process runs them; the time from ``start()`` returning to the first step
  starting, with LISTEN/NOTIFY and with polling only (the engine's default
  poll delays, 50 ms doubling to 1 s);
* **workers**: a queue of runs drained by 1 and by 4 worker processes
  (throughput from "go" to the last run done).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure, percentile, progress
from benchmarks.pickup import pickup_ms

ROOT = Path(__file__).resolve().parent.parent
ENV = "STREAMLINE_BENCH_POSTGRES_URL"


class Server:
    """The benchmark's server: a throwaway cluster (durable defaults) or a given URL."""

    def __init__(self, url: str | None = None) -> None:
        self._given = url
        self._cluster: Any = None
        self.url = url or ""

    def __enter__(self) -> Server:
        if not self._given:
            sys.path.insert(0, str(ROOT))
            from tests.postgres.cluster import Cluster

            progress("postgres: starting a throwaway cluster (default, durable settings)")
            self._cluster = Cluster({}, prefix="streamline-bench-pg-")
            self._cluster.create()
            self.url = self._cluster.createdb("bench")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cluster is not None:
            self._cluster.remove()

    def env(self) -> dict[str, str]:
        """The environment a workload process finds the server in."""
        return {ENV: self.url}

    def table_url(self, table: str) -> str:
        return f"{self.url}{'&' if '?' in self.url else '?'}table={table}"

    def dbos_database(self) -> str:
        """A URL of a database that does not exist yet (DBOS creates its system database)."""
        name = f"dbos_{uuid.uuid4().hex[:10]}"
        base, _, query = self.url.partition("?")
        base = base.rsplit("/", 1)[0] + "/" + name
        return f"{base}?{query}" if query else base

    def settings(self) -> dict[str, str]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            out = {}
            for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes"):
                row = conn.execute(f"SHOW {name}".encode()).fetchone()
                out[name] = str(row[0]) if row else "?"
            return out


async def server_durability(store: Any) -> dict[str, Any]:
    """The PostgreSQL server's durability settings, as the store's own connection sees them."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(os.environ[ENV], autocommit=True) as conn:
        out: dict[str, Any] = {}
        for name in ("synchronous_commit", "fsync"):
            row = await (await conn.execute(f"SHOW {name}".encode())).fetchone()
            out[name] = str(row[0]) if row else "?"
        return out


# --- pickup -----------------------------------------------------------------------


def pickup(
    server: Server, n: int, seed: int, gap: tuple[float, float], notify: bool, tail: float = 1.5
) -> dict[str, float]:
    """p50/p90/max pickup latency (ms) over ``n`` runs, with NOTIFY or polling only."""
    import asyncio
    import tempfile

    from streamline_core import Engine

    url = server.table_url(f"pickup_{uuid.uuid4().hex[:10]}")
    with tempfile.TemporaryDirectory(prefix="streamline-pickup-") as tmp:
        out = Path(tmp) / "starts.txt"
        argv = [sys.executable, "-m", "benchmarks.pickup_worker", url, str(out)]
        worker = subprocess.Popen([*argv, "notify" if notify else "poll"], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert worker.stdout is not None
        worker.stdout.readline()
        rng = random.Random(seed)
        started: dict[str, float] = {}

        async def noop(ctx: Any) -> None:
            return None

        async def client() -> None:
            engine = Engine(url, load_entry_point_plugins=False)
            wf = engine.workflow("pickup", steps={"first": noop})
            for _ in range(n):
                await asyncio.sleep(rng.uniform(*gap))  # the worker idles at random depths
                run = await wf.start()
                started[run.id] = time.time()
            await asyncio.sleep(tail)  # the last pickup lands
            await engine.shutdown()

        asyncio.run(client())
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=15)
        lat = pickup_ms(out, started)
    return {
        "runs": len(lat),
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "max_ms": max(lat),
    }


# --- 1 vs 4 worker processes --------------------------------------------------------


def drain(server: Server, workers: int, runs: int, in_flight: int) -> dict[str, float]:
    """Steps/s of ``workers`` worker processes draining ``runs`` queued runs."""
    import asyncio

    import psycopg

    from streamline_core import Engine

    table = f"drain_{uuid.uuid4().hex[:10]}"
    url = server.table_url(table)

    async def noop(ctx: Any) -> None:
        return None

    async def enqueue() -> None:
        engine = Engine(url, load_entry_point_plugins=False)
        wf = engine.workflow("bench", steps={f"s{i}": noop for i in range(10)})
        sem = asyncio.Semaphore(20)

        async def one() -> None:
            async with sem:
                await wf.start()

        await asyncio.gather(*(one() for _ in range(runs)))
        await engine.shutdown()

    asyncio.run(enqueue())
    argv = [sys.executable, "-m", "benchmarks.pg_worker", url, str(in_flight)]
    procs = [
        subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    count = f"SELECT count(*) FROM {table} WHERE status = 'done'".encode()
    with psycopg.connect(server.url, autocommit=True) as conn:
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        while True:
            row = conn.execute(count).fetchone()
            if row is not None and row[0] >= runs:
                break
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=30)
    return {"steps_per_s": runs * 10 / elapsed}


# --- the section --------------------------------------------------------------------


def section(
    reps: int,
    dbos_python: Path | None,
    url: str | None,
    sizes: dict[str, Any],
) -> dict[str, Any]:
    """Every PostgreSQL figure (see the module docstring)."""
    from benchmarks import compare
    from benchmarks.compare import Scenario

    with Server(url) as server:
        out: dict[str, Any] = {"server": server.settings()}
        scenarios = [
            Scenario("PostgreSQL, sequential", "postgres", sizes["seq_runs"], 1, True),
            Scenario("PostgreSQL, 50 in flight", "postgres", sizes["in_flight_runs"], 50, True),
        ]
        out["throughput"] = compare.run(scenarios, reps, dbos_python, server)
        out["pickup"] = {}
        for notify in (True, False):
            label = "notify" if notify else "polling"
            samples = []
            for rep in range(reps):
                progress(f"postgres pickup ({label}), repetition {rep + 1}/{reps}")
                samples.append(
                    pickup(
                        server,
                        sizes["pickup_runs"],
                        rep,
                        sizes["pickup_gap"],
                        notify,
                        sizes["pickup_tail"],
                    )
                )
            out["pickup"][label] = {
                "runs": samples[0]["runs"],
                **{k: Figure.of(s[k] for s in samples) for k in ("p50_ms", "p90_ms", "max_ms")},
            }
        out["workers"] = {}
        for workers in (1, 4):
            samples = []
            for rep in range(reps):
                progress(f"postgres: {workers} worker process(es), repetition {rep + 1}/{reps}")
                samples.append(drain(server, workers, sizes["drain_runs"], 50))
            out["workers"][str(workers)] = Figure.of(s["steps_per_s"] for s in samples)
        out["workers"]["runs"] = sizes["drain_runs"]
    return out
