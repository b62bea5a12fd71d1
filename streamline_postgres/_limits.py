"""``claim_limited`` on PostgreSQL: one transaction under a table-wide advisory lock.

The flow-control claim is the one store operation that is more than one
statement. Its transaction first takes ``pg_advisory_xact_lock`` on a key
derived from the table, so flow-control claims of one table run one at a
time across every connection and process (plain claims, which never lease a
limited run, are not held up). Inside it, under READ COMMITTED, each
statement sees every commit before it:

1. revoke the expired leases of keyed runs (``UPDATE``; a heartbeat racing
   it either lands first — the lease is live and counted below — or finds
   the lease gone);
2. read the claimable limited runs in claim order;
3. count live leases and recent begins of the buckets met, in one statement
   each (``unnest`` of the buckets, an index range per bucket);
4. lease the runs the :class:`~streamline_core.slots.SlotBook` admits.

No other writer can lease a limited run between 3 and 4: the only writers
that lease limited runs are claims under the same lock. The lock is released
by COMMIT (or ROLLBACK, when anything fails), never held across calls.
Cost per claim: five statements more than a plain claim (the candidates
read a page at a time: only the runs each bucket has room for), serialised
per table.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from streamline_core.slots import SlotBook

from ._schema import LIMITED_SQL

__all__ = ["LimitedSQL", "claim_limited_rows"]

_ACTIVE_SQL = "status IN ('draft', 'running', 'waiting')"


class LimitedSQL:
    """The statements of the flow-control claim for one table (already quoted)."""

    def __init__(self, t: str, table: str) -> None:
        self.lock = f"SELECT pg_advisory_xact_lock(hashtext('streamline_limits:' || '{table}'))"
        self.revoke = f"""
UPDATE {t} SET write_id = NULL, doc = jsonb_set(jsonb_set(jsonb_set(
        doc, '{{lease}}', 'null'::jsonb),
        '{{revision}}', to_jsonb(revision + 1)),
        '{{recoveries}}', to_jsonb(
            CASE WHEN jsonb_typeof(doc->'recoveries') = 'number'
                 THEN (doc->>'recoveries')::numeric ELSE 0 END
            + CASE WHEN status = 'running' THEN 1 ELSE 0 END))
WHERE concurrency_key IS NOT NULL AND lease_expires_at IS NOT NULL
  AND lease_expires_at <= %(now)s"""
        # Buckets already full are left out here (live leases per bucket are
        # an index range), so a busy queue costs the runs it could lease only.
        # Only runs a bucket could take are read: within each slot bucket, the
        # first (limit - live leases) in claim order (live leases per bucket
        # are an index range), a page at a time. A busy queue thus costs the
        # runs that could be leased, not every queued run.
        self.candidates = f"""
WITH live AS (
    SELECT workflow_id AS wf, concurrency_key AS ck, count(*) AS n FROM {t}
    WHERE concurrency_key IS NOT NULL AND lease_expires_at IS NOT NULL
      AND lease_expires_at > %(now)s
    GROUP BY workflow_id, concurrency_key),
cand AS (
    SELECT id, workflow_id, concurrency_key, rate_key, began_at, priority, next_run_at,
        concurrency_limit AS climit, rate_limit AS rlimit, rate_period AS rperiod,
        coalesce(live.n, 0) AS held,
        row_number() OVER (PARTITION BY workflow_id, concurrency_key
                           ORDER BY priority DESC, next_run_at, id) AS rank
    FROM {t} LEFT JOIN live ON live.wf = workflow_id AND live.ck = concurrency_key
    WHERE {_ACTIVE_SQL} AND NOT paused AND next_run_at IS NOT NULL AND {LIMITED_SQL}
      AND next_run_at <= %(now)s
      AND (lease_expires_at IS NULL OR lease_expires_at <= %(now)s)
      AND {{workflow}}{{tenant}}{{one}})
SELECT id, workflow_id, concurrency_key, rate_key, began_at, climit, rlimit, rperiod FROM cand
WHERE concurrency_key IS NULL OR rank <= coalesce(climit, 1) - held
ORDER BY priority DESC, next_run_at, id
LIMIT %(page)s OFFSET %(offset)s"""
        self.live = f"""
SELECT b.wf, b.k, (SELECT count(*) FROM {t} r WHERE r.concurrency_key = b.k
    AND r.workflow_id = b.wf AND r.lease_expires_at IS NOT NULL
    AND r.lease_expires_at > %(now)s)
FROM unnest(%(wfs)s::text[], %(keys)s::text[]) AS b(wf, k)"""
        self.begun = f"""
SELECT b.wf, b.k, (SELECT count(*) FROM {t} r WHERE r.rate_key = b.k
    AND r.workflow_id = b.wf AND r.began_at IS NOT NULL
    AND r.began_at > b.since AND r.began_at <= %(now)s)
FROM unnest(%(wfs)s::text[], %(keys)s::text[], %(sinces)s::timestamptz[]) AS b(wf, k, since)"""
        self.lease = f"""
UPDATE {t} r SET write_id = NULL, doc = jsonb_set(jsonb_set(jsonb_set(jsonb_set(
        r.doc, '{{lease}}', %(lease)s::jsonb),
        '{{revision}}', to_jsonb(r.revision + 1)),
        '{{recoveries}}', to_jsonb(
            CASE WHEN jsonb_typeof(r.doc->'recoveries') = 'number'
                 THEN (r.doc->>'recoveries')::numeric ELSE 0 END
            + CASE WHEN r.lease_owner IS NOT NULL AND r.status = 'running' THEN 1 ELSE 0 END)),
        '{{began_at}}', CASE WHEN r.began_at IS NULL THEN to_jsonb(%(now_text)s::text)
                             ELSE r.doc->'began_at' END)
WHERE r.id = ANY(%(ids)s::text[])
RETURNING r.id, r.doc::text"""


async def claim_limited_rows(
    conn: Any, sql: LimitedSQL, candidates: str, params: dict[str, Any], limit: int
) -> list[tuple[str, str]]:
    """The whole claim on ``conn``, inside the caller's transaction; the leased ``(id, doc)``s."""
    now: datetime = params["now"]
    await conn.execute(sql.lock)
    await conn.execute(sql.revoke, {"now": now})
    page = 2 * limit + 50
    live: dict[tuple[str, str], int] = {}
    begun: dict[tuple[str, str], int] = {}
    book = SlotBook(
        now, lambda wf, k: live.get((wf, k), 0), lambda wf, k, _since: begun.get((wf, k), 0)
    )
    chosen: list[str] = []
    offset = 0
    while len(chosen) < limit:
        found = await conn.execute(candidates, {**params, "page": page, "offset": offset})
        rows = await found.fetchall()
        await _count(conn, sql, now, rows, live, begun)
        for run_id, wf, ck, rk, began, climit, rlimit, rperiod in rows:
            doc = {
                "workflow_id": wf,
                "concurrency_key": ck,
                "concurrency_limit": None if climit is None else int(climit),
                "rate_key": rk,
                "rate_limit": None if rlimit is None else int(rlimit),
                "rate_period": rperiod,
                "began_at": began,
            }
            if book.admit(doc):
                chosen.append(run_id)
                if len(chosen) >= limit:
                    break
        if len(rows) < page:
            break
        offset += page
    if not chosen:
        return []
    leased = await conn.execute(
        sql.lease, {"lease": params["lease"], "now_text": now.isoformat(), "ids": chosen}
    )
    return [(r[0], r[1]) for r in await leased.fetchall()]


async def _count(
    conn: Any,
    sql: LimitedSQL,
    now: datetime,
    rows: list[Any],
    live: dict[tuple[str, str], int],
    begun: dict[tuple[str, str], int],
) -> None:
    """Fill in live leases and recent begins of the buckets of ``rows`` not counted yet."""
    cbuckets = sorted({(r[1], r[2]) for r in rows if r[2] is not None} - set(live))
    rbuckets: dict[tuple[str, str], datetime] = {}
    for r in rows:
        if r[3] is not None and r[4] is None and (r[1], r[3]) not in begun:
            rbuckets.setdefault((r[1], r[3]), now - timedelta(seconds=float(r[7] or 0.0)))
    if cbuckets:
        found = await conn.execute(
            sql.live,
            {"now": now, "wfs": [b[0] for b in cbuckets], "keys": [b[1] for b in cbuckets]},
        )
        live.update({(wf, k): int(n) for wf, k, n in await found.fetchall()})
    if rbuckets:
        keys = list(rbuckets)
        found = await conn.execute(
            sql.begun,
            {
                "now": now,
                "wfs": [b[0] for b in keys],
                "keys": [b[1] for b in keys],
                "sinces": [rbuckets[b] for b in keys],
            },
        )
        begun.update({(wf, k): int(n) for wf, k, n in await found.fetchall()})
