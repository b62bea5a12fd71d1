"""psycopg 3 vs asyncpg on the PostgreSQL store's hot path: claim + transition.

``python -m benchmarks.postgres_drivers [--url URL] [--runs N] [--workers W]``

Each driver gets the same table (a JSONB document plus indexed columns),
the same ``N`` due runs and ``W`` concurrent asyncio workers. A worker loops
"claim one run (CTE ``FOR UPDATE SKIP LOCKED`` + ``UPDATE … RETURNING``),
then commit one step (a conditional ``UPDATE … jsonb_set … RETURNING``)", as
the engine does per step, until every run is claimed. Reported: steps/s
(one claim + one commit) per driver, best of ``--repeat`` rounds. Without
``--url`` (or ``$STREAMLINE_TEST_POSTGRES_URL``) a throwaway cluster is
started with the test suite's helper. The store is not involved: this
measures the drivers' round trips and codecs, which is what the choice is about.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

_DDL = """
DROP TABLE IF EXISTS bench_runs;
CREATE TABLE bench_runs (
    id text PRIMARY KEY, doc jsonb NOT NULL, status text NOT NULL,
    priority int NOT NULL, next_run_at timestamptz, lease_owner text,
    lease_expires_at timestamptz, revision bigint NOT NULL);
CREATE INDEX bench_claimable ON bench_runs (priority DESC, next_run_at, id)
    WHERE status IN ('draft', 'running', 'waiting');
"""
_CLAIM = """
WITH picked AS (
    SELECT id FROM bench_runs
    WHERE status IN ('draft', 'running', 'waiting') AND next_run_at <= {now}
      AND (lease_expires_at IS NULL OR lease_expires_at <= {now})
    ORDER BY priority DESC, next_run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE bench_runs r SET lease_owner = {owner}, lease_expires_at = {expires},
    revision = r.revision + 1,
    doc = jsonb_set(r.doc, '{{lease}}', jsonb_build_object('owner', {owner}::text))
FROM picked WHERE r.id = picked.id RETURNING r.id, r.revision, r.doc::text
"""
_COMMIT = """
UPDATE bench_runs SET status = 'done', lease_owner = NULL, lease_expires_at = NULL,
    revision = revision + 1,
    doc = jsonb_set(jsonb_set(doc, '{{steps,0}}', {step}::jsonb), '{{status}}', '"done"')
WHERE id = {id} AND revision = {rev} AND lease_owner = {owner} RETURNING doc::text
"""


def _doc(i: int) -> str:
    return json.dumps(
        {
            "id": f"r{i:06d}",
            "status": "running",
            "steps": [{"step_id": "a"}],
            "context": {"i": i},
            "lease": None,
        }
    )


async def _psycopg(url: str, runs: int, workers: int) -> float:
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    claim = _CLAIM.format(now="%(now)s", owner="%(owner)s", expires="%(exp)s")
    commit = _COMMIT.format(step="%(step)s", id="%(id)s", rev="%(rev)s", owner="%(owner)s")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(_DDL)  # type: ignore[arg-type]
        await _load(
            lambda sql, rows: conn.cursor().executemany(
                sql.replace("$1", "%s").replace("$2", "%s"), rows
            ),
            runs,
        )
    async with AsyncConnectionPool(
        url, min_size=workers, max_size=workers, open=False, kwargs={"autocommit": True}
    ) as pool:

        async def worker(name: str) -> int:
            done = 0
            while True:
                now = datetime.now(UTC)
                async with pool.connection() as c:
                    row = await (
                        await c.execute(
                            claim, {"now": now, "owner": name, "exp": now + timedelta(seconds=30)}
                        )
                    ).fetchone()
                if row is None:
                    return done
                async with pool.connection() as c:
                    await (
                        await c.execute(
                            commit,
                            {
                                "step": json.dumps(
                                    {"step_id": "a", "status": "done", "output": done}
                                ),
                                "id": row[0],
                                "rev": row[1],
                                "owner": name,
                            },
                        )
                    ).fetchone()
                done += 1

        return await _time(worker, workers)


async def _asyncpg(url: str, runs: int, workers: int) -> float:
    import asyncpg

    claim = _CLAIM.format(now="$1", owner="$2", expires="$3")
    commit = _COMMIT.format(step="$1", id="$2", rev="$3", owner="$4")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_DDL)
        await _load(conn.executemany, runs)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(url, min_size=workers, max_size=workers)
    try:

        async def worker(name: str) -> int:
            done = 0
            while True:
                now = datetime.now(UTC)
                async with pool.acquire() as c:
                    row = await c.fetchrow(claim, now, name, now + timedelta(seconds=30))
                if row is None:
                    return done
                step = json.dumps({"step_id": "a", "status": "done", "output": done})
                async with pool.acquire() as c:
                    await c.fetchrow(commit, step, row[0], row[1], name)
                done += 1

        return await _time(worker, workers)
    finally:
        await pool.close()


async def _load(executemany: Callable[[str, list[Any]], Awaitable[Any]], runs: int) -> None:
    rows = [(f"r{i:06d}", _doc(i)) for i in range(runs)]
    await executemany(
        "INSERT INTO bench_runs (id, doc, status, priority, next_run_at, revision) "
        "VALUES ($1, $2::jsonb, 'running', 0, now() - interval '1 second', 0)",
        rows,
    )


async def _time(worker: Callable[[str], Awaitable[int]], workers: int) -> float:
    started = time.perf_counter()
    counts = await asyncio.gather(*(worker(f"w{i}") for i in range(workers)))
    return sum(counts) / (time.perf_counter() - started)


def main() -> None:
    """Run both drivers and print steps/s for each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", default=os.environ.get("STREAMLINE_TEST_POSTGRES_URL"))
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    url = args.url
    if not url:
        from tests.postgres.server import server_url

        url = server_url()
    for name, bench in (("psycopg", _psycopg), ("asyncpg", _asyncpg)):
        best = max(asyncio.run(bench(url, args.runs, args.workers)) for _ in range(args.repeat))
        print(f"{name:8s} {best:8.0f} steps/s  ({args.runs} runs, {args.workers} workers)")


if __name__ == "__main__":
    main()
