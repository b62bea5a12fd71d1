"""DBOS Transact on the standard workload; run by the DBOS venv's python, never imported.

``python dbos_workload.py RUNS IN_FLIGHT [SYSTEM_DATABASE_URL]`` (in an empty
working directory) runs a ``@DBOS.workflow()`` of 10 ``@DBOS.step()`` no-ops
``RUNS`` times, sequentially (``IN_FLIGHT`` 1) or with ``IN_FLIGHT`` threads,
and prints one JSON object. DBOS gets its defaults: without a
``system_database_url`` its system database is ``sqlite:///bench.sqlite`` in
the working directory; with one (``postgresql://...``) it is that database,
which DBOS creates and migrates itself.

Synchronous workflows called directly (threads for concurrency) are DBOS's
primary API and measured faster here than ``async def`` workflows under
asyncio, so they are what DBOS is given.
"""

from __future__ import annotations

import json
import resource
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

STEPS = 10
SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}

counts = {"commits": 0, "statements": 0}


@sa.event.listens_for(sa.engine.Engine, "commit")
def _on_commit(conn: Any) -> None:
    counts["commits"] += 1


@sa.event.listens_for(sa.engine.Engine, "before_cursor_execute")
def _on_statement(*args: Any) -> None:
    counts["statements"] += 1


SYSTEM_DATABASE_URL = sys.argv[3] if len(sys.argv) > 3 else None
DBOS(
    config={"name": "bench", "system_database_url": SYSTEM_DATABASE_URL}
    if SYSTEM_DATABASE_URL
    else {"name": "bench"}
)


@DBOS.step()
def noop(i: int) -> None:
    return None


@DBOS.workflow()
def bench() -> None:
    for i in range(STEPS):
        noop(i)


def _runs(n: int, in_flight: int) -> None:
    if in_flight <= 1:
        for _ in range(n):
            bench()
        return
    with ThreadPoolExecutor(in_flight) as pool:
        for future in [pool.submit(bench) for _ in range(n)]:
            future.result()


def _durability() -> dict[str, Any]:
    """The PRAGMAs as DBOS's own pooled connection has them."""
    from dbos import _dbos

    engine = _dbos._dbos_global_instance._sys_db.engine  # type: ignore[union-attr]
    if engine.url.get_backend_name() == "postgresql":
        with engine.connect() as conn:
            return {
                "synchronous_commit": conn.exec_driver_sql("SHOW synchronous_commit").scalar(),
                "fsync": conn.exec_driver_sql("SHOW fsync").scalar(),
                "dbos_version": version("dbos"),
                "system_database": "postgresql",
            }
    with engine.connect() as conn:
        journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        level = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        url = str(engine.url)
    return {
        "journal_mode": journal,
        "synchronous": SYNCHRONOUS_NAMES.get(level, str(level)),
        "sqlite_version": sqlite3.sqlite_version,
        "dbos_version": version("dbos"),
        "system_database_url": url,
    }


def main(runs: int, in_flight: int) -> dict[str, Any]:
    DBOS.launch()
    _runs(min(5, runs), in_flight)  # warm-up, as on our side
    before = dict(counts)
    t, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    _runs(runs, in_flight)
    elapsed, cpu_end = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
    steps = runs * STEPS
    user, system = cpu_end.ru_utime - cpu.ru_utime, cpu_end.ru_stime - cpu.ru_stime
    out = {
        "steps_per_s": steps / elapsed,
        "cpu_us_per_step": (user + system) / steps * 1e6,
        "cpu_sys_us_per_step": system / steps * 1e6,
        "commits_per_step": (counts["commits"] - before["commits"]) / steps,
        "statements_per_step": (counts["statements"] - before["statements"]) / steps,
        **_durability(),
    }
    DBOS.destroy()
    return out


if __name__ == "__main__":
    result = main(int(sys.argv[1]), int(sys.argv[2]))
    print("RESULT " + json.dumps(result), flush=True)
