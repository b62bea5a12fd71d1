"""``claim_limited`` on SQLite: per-key slots and rate windows inside one write transaction.

Every write of the store runs under ``BEGIN IMMEDIATE``, which excludes every
other writer of the file, in any process, until COMMIT. So the whole
flow-control claim — revoke expired leases of keyed runs, count live leases
and recent begins per bucket, lease the runs admitted — runs as one job of
the writer and nothing can lease a run of the same bucket in between: the
counts it reads are the counts when its leases land. A claim costs, beyond a
plain one: one ``UPDATE`` over the (usually empty) index range of expired
keyed leases, one indexed ``count`` per bucket it meets, and a walk of the
limited runs in claim order until ``limit`` are admitted (buckets with no
room are skipped).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from streamline_core.slots import SlotBook
from streamline_sqlite._codec import micros
from streamline_sqlite._schema import CLAIMABLE_SQL, LIMITED_SQL

__all__ = ["claim_limited_rows"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Revocation: an expired lease of a keyed run is removed so its owner can
# never revive it after its slot was counted free (a takeover's recovery
# is counted here, as the claim that takes the run over would have).
_REVOKE = """
UPDATE runs SET
    lease_owner = NULL,
    lease_expires_at = NULL,
    revision = revision + 1,
    doc = CASE WHEN json_valid(doc) THEN json_set(
        doc,
        '$.lease', NULL,
        '$.revision', revision + 1,
        '$.recoveries', ifnull(json_extract(doc, '$.recoveries'), 0) + (status = 'running'))
        ELSE doc END
WHERE concurrency_key IS NOT NULL AND lease_expires_at IS NOT NULL AND lease_expires_at <= ?1
"""

# Buckets already full are left out in SQL (the live-lease count per bucket
# is an index range of runs_slots), so a claim over a busy queue reads only
# the runs it could lease, not every queued run.
_CANDIDATES = """
WITH live AS (
    SELECT workflow_id AS wf, concurrency_key AS ck, count(*) AS n
    FROM runs INDEXED BY runs_slots
    WHERE concurrency_key IS NOT NULL AND lease_expires_at IS NOT NULL AND lease_expires_at > ?1
    GROUP BY workflow_id, concurrency_key)
SELECT r.id, r.workflow_id, r.concurrency_key, r.rate_key, r.began_at,
    r.concurrency_limit, r.rate_limit, r.rate_period
FROM runs AS r INDEXED BY runs_limited
LEFT JOIN live ON live.wf = r.workflow_id AND live.ck = r.concurrency_key
WHERE {claimable} AND next_run_at IS NOT NULL AND {limited} AND next_run_at <= ?1
  AND (lease_expires_at IS NULL OR lease_expires_at <= ?1)
  AND (r.concurrency_key IS NULL OR ifnull(live.n, 0) < ifnull(r.concurrency_limit, 1))
  AND {workflow} IN (SELECT value FROM json_each(?2)){extra}
ORDER BY priority DESC, next_run_at ASC, id ASC
"""

_LIVE = (
    "SELECT count(*) FROM runs WHERE concurrency_key = ? AND workflow_id = ? "
    "AND lease_expires_at IS NOT NULL AND lease_expires_at > ?"
)
_BEGUN = (
    "SELECT count(*) FROM runs WHERE rate_key = ? AND workflow_id = ? "
    "AND began_at IS NOT NULL AND began_at > ? AND began_at <= ?"
)

_LEASE = """
UPDATE runs SET
    lease_owner = ?1,
    lease_expires_at = ?2,
    revision = revision + 1,
    began_at = ifnull(began_at, ?4),
    doc = CASE WHEN json_valid(doc) THEN json_set(
        doc,
        '$.lease', json(?3),
        '$.revision', revision + 1,
        '$.recoveries', ifnull(json_extract(doc, '$.recoveries'), 0)
            + (lease_owner IS NOT NULL AND status = 'running'),
        '$.began_at', ifnull(json_extract(doc, '$.began_at'), ?5))
        ELSE doc END
WHERE id IN (SELECT value FROM json_each(?6))
RETURNING id, doc
"""


def candidates_sql(workflow: str, tenant: bool, one: bool) -> str:
    """The candidate query for a workflow-filter expression, with optional tenant / run id."""
    extra = (" AND tenant_id = ?3" if tenant else "") + (" AND id = ?4" if one else "")
    return _CANDIDATES.format(
        claimable=CLAIMABLE_SQL, limited=LIMITED_SQL, workflow=workflow, extra=extra
    )


def claim_limited_rows(
    conn: sqlite3.Connection,
    *,
    candidates: str,
    candidate_params: tuple[Any, ...],
    worker: str,
    lease_json: str,
    now: datetime,
    expires: datetime,
    limit: int,
) -> list[tuple[str, str]]:
    """Run the whole flow-control claim on the writer's connection; the leased ``(id, doc)``s."""
    now_us = micros(now)
    conn.execute(_REVOKE, (now_us,))

    def live(wf: str, key: str) -> int:
        return int(conn.execute(_LIVE, (key, wf, now_us)).fetchone()[0])

    def begun(wf: str, key: str, since: datetime) -> int:
        return int(conn.execute(_BEGUN, (key, wf, micros(since), now_us)).fetchone()[0])

    book = SlotBook(now, live, begun)
    chosen: list[str] = []
    for row in conn.execute(candidates, candidate_params):  # lazily: stop once enough
        run_id, wf, ck, rk, began, climit, rlimit, rperiod = row
        doc: Mapping[str, Any] = {
            "workflow_id": wf,
            "concurrency_key": ck,
            "concurrency_limit": climit,
            "rate_key": rk,
            "rate_limit": rlimit,
            "rate_period": rperiod,
            "began_at": None if began is None else _EPOCH + timedelta(microseconds=began),
        }
        if book.admit(doc):
            chosen.append(run_id)
            if len(chosen) >= limit:
                break
    if not chosen:
        return []
    params = (worker, micros(expires), lease_json, now_us, now.isoformat(), json.dumps(chosen))
    return [(run_id, doc) for run_id, doc in conn.execute(_LEASE, params).fetchall()]
