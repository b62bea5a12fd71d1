"""``claim_limited`` on MongoDB: slot tokens under unique indexes, no transactions.

MongoDB (and mongomock) make one document's update atomic, nothing more, so
a count read and a lease written later could never be strict: two claimers
would both count one free slot. Instead a bucket's ``limit`` slots are
*tokens*, strings ``"<workflow>\\x1f<key>\\x1f<i>"`` for ``i < limit``, and a
run holds a slot by carrying its token in the field ``slot``, which a
**unique** partial index covers. Leasing a keyed run sets its ``lease`` and
its ``slot`` in one conditional update of its own document, so two runs can
never hold one token and at most ``limit`` runs of a bucket hold a live lease.

A token is taken over from the run that holds it only while that run holds
no live lease (``lease`` null — released, suspended, finished — or expired),
by a conditional ``$unset`` that repeats that condition; expired leases of
keyed runs are revoked first (``lease = null``), so their owners can never
revive them. Rate windows work the same way with ``rate_slot`` and
``rate_limit`` tokens: a token passes to a new run only when the run that
began with it began at least ``rate_period`` ago, so no window of that
length holds more than ``rate_limit`` begins.

Cost per claim, beyond a plain claim: two ``update_many`` (revocation), one
read of the claimable limited runs, and per run considered one indexed read
of its bucket's token holders (cached per call), at most one take-over
update per token, and the lease update itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument

from streamline_core.claiming import is_takeover
from streamline_core.errors import ConflictError

from ._documents import WRITE_MARK, to_storage
from ._types import Document

__all__ = [
    "PROJECTION",
    "FULL",
    "limited_filter",
    "revoke_expired",
    "lease_limited",
]

SLOT = "slot"
RATE_SLOT = "rate_slot"

PROJECTION = {
    "_id": 1,
    "workflow_id": 1,
    "status": 1,
    "lease": 1,
    "revision": 1,
    "concurrency_key": 1,
    "concurrency_limit": 1,
    "rate_key": 1,
    "rate_limit": 1,
    "rate_period": 1,
    "began_at": 1,
    SLOT: 1,
    RATE_SLOT: 1,
}

Call = Callable[..., AbstractContextManager[None]]

FULL: Document = {}
"""What :func:`lease_limited` returns when the run's bucket has no slot (or rate token) free."""


def limited_filter(base: Document, now: datetime, run_id: str | None) -> Document:
    """Claimable limited runs (free or with an expired lease), optionally one run."""
    when = to_storage(now)
    clause: Document = {
        **base,
        "$or": [{"concurrency_key": {"$ne": None}}, {"rate_key": {"$ne": None}}],
    }
    clause.setdefault("$and", [])
    clause["$and"] = [
        *clause["$and"],
        {"$or": [{"lease": None}, {"lease.expires_at": {"$lte": when}}]},
    ]
    if run_id is not None:
        clause["_id"] = run_id
    return clause


def _token(workflow_id: str, key: str, i: int) -> str:
    return f"{workflow_id}\x1f{key}\x1f{i}"


async def revoke_expired(collection: Any, call: Call, now: datetime) -> None:
    """Remove every expired lease of a keyed run (a running one counts a recovery)."""
    when = to_storage(now)
    expired = {"concurrency_key": {"$ne": None}, "lease.expires_at": {"$lte": when}}
    with call("revoke expired leases"):
        await collection.update_many(
            {**expired, "status": "running"},
            {"$set": {"lease": None}, "$inc": {"revision": 1, "recoveries": 1}},
        )
        await collection.update_many(
            {**expired, "status": {"$ne": "running"}},
            {"$set": {"lease": None}, "$inc": {"revision": 1}},
        )


async def _free_tokens(
    collection: Any, call: Call, field: str, tokens: list[str], reusable: Document
) -> AsyncIterator[str]:
    """Tokens nobody holds, then tokens taken over from holders matching ``reusable``."""
    with call("read slot holders"):
        holders = await collection.find(
            {field: {"$in": tokens}}, projection={"_id": 1, field: 1}
        ).to_list(None)
    held = {h[field]: h["_id"] for h in holders}
    for token in tokens:
        if token not in held:
            yield token
    for token, holder in held.items():
        with call("take a slot over", holder):
            result = await collection.update_one(
                {"_id": holder, field: token, **reusable}, {"$unset": {field: ""}}
            )
        if result.modified_count == 1:
            yield token


async def _first(tokens: AsyncIterator[str], n: int = 2) -> list[str | None]:
    """Up to ``n`` usable tokens (taken over lazily: only as many as asked for)."""
    found: list[str | None] = []
    async for token in tokens:
        found.append(token)
        if len(found) >= n:
            break
    await tokens.aclose()  # type: ignore[attr-defined]
    return found


async def lease_limited(
    collection: Any,
    call: Call,
    candidate: Document,
    now: datetime,
    lease: Document,
    claim_id: str,
) -> Document | None:
    """Lease one candidate within its slots and rate window.

    Returns:
        The leased document; :data:`FULL` when its bucket has no slot or rate
        token free now; ``None`` when the run changed meanwhile.
    """
    when = to_storage(now)
    wf = candidate["workflow_id"]
    ck = candidate.get("concurrency_key")
    rk = candidate.get("rate_key") if candidate.get("began_at") is None else None
    slots: list[str | None] = [None]
    if ck is not None:
        own = candidate.get(SLOT)
        limit = int(candidate.get("concurrency_limit") or 1)
        tokens = [_token(wf, ck, i) for i in range(limit)]
        if own in tokens:
            slots = [own]  # still ours: nobody took it over while we held no lease
        else:
            no_live_lease = {"$or": [{"lease": None}, {"lease.expires_at": {"$lte": when}}]}
            slots = await _first(_free_tokens(collection, call, SLOT, tokens, no_live_lease))
    rates: list[str | None] = [None]
    if rk is not None:
        period = float(candidate.get("rate_period") or 0.0)
        tokens = [_token(wf, rk, i) for i in range(int(candidate.get("rate_limit") or 1))]
        old = {"began_at": {"$lte": to_storage(now - timedelta(seconds=period))}}
        rates = await _first(_free_tokens(collection, call, RATE_SLOT, tokens, old))
    if not slots or not rates:
        return FULL
    increments = {"revision": 1}
    if is_takeover(candidate.get("status"), candidate.get("lease")):
        increments["recoveries"] = 1
    for slot in slots:
        for rate in rates:
            sets: Document = {"lease": lease, WRITE_MARK: claim_id}
            if slot is not None:
                sets[SLOT] = slot
            if rate is not None:
                sets[RATE_SLOT] = rate
            if candidate.get("began_at") is None:
                sets["began_at"] = when
            match: Document = {
                "_id": candidate["_id"],
                "revision": candidate.get("revision"),
                "$or": [{"lease": None}, {"lease.expires_at": {"$lte": when}}],
            }
            try:
                with call("lease a limited run", candidate["_id"]):
                    doc: Document | None = await collection.find_one_and_update(
                        match,
                        {"$set": sets, "$inc": increments},
                        return_document=ReturnDocument.AFTER,
                    )
            except ConflictError:  # the token went to another run meanwhile: try the next
                continue
            return doc  # None: the run changed meanwhile (another claimer got it)
    return None
