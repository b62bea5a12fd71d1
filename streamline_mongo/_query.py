"""Typed queries -> MongoDB filters.

Callers never pass raw query documents: :class:`~streamline_core.store.RunQuery`
and the claim conditions are translated here, using only operators that
behave the same on MongoDB and mongomock (equality, ``$in``, ``$lt``/``$lte``/
``$gte``, ``$or``, ``$and``; DESIGN.md §8).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from streamline_core.run import ACTIVE_STATUSES, RunStatus, decode_cursor
from streamline_core.store import RunQuery, WorkflowFilter, sort_key

from ._documents import to_storage
from ._types import Document

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "claimable_filter",
    "query_filter",
    "page_filter",
    "sort_spec",
    "CLAIM_ORDER",
]

# Fixed order, so that index definitions compare equal across processes.
ACTIVE: list[str] = [s.value for s in (RunStatus.DRAFT, RunStatus.RUNNING, RunStatus.WAITING)]
TERMINAL: list[str] = [s.value for s in (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED)]
assert set(ACTIVE) == {s.value for s in ACTIVE_STATUSES}

CLAIM_ORDER: list[tuple[str, int]] = [("priority", -1), ("next_run_at", 1), ("_id", 1)]
"""Priority first, then the earliest due, then the id for a stable order."""


def _and(clauses: list[Document]) -> Document:
    clauses = [c for c in clauses if c]
    if not clauses:
        return {}
    if len(clauses) == 1:
        return clauses[0]
    return {"$and": clauses}


def claimable_filter(now: datetime, workflows: WorkflowFilter, tenant_id: str | None) -> Document:
    """Every condition of "claimable" in the Store contract, as one filter.

    ``next_run_at <= now`` also excludes a null ``next_run_at``: comparison
    operators never match null or missing values.
    """
    when = to_storage(now)
    clause: Document = {
        "status": {"$in": ACTIVE},
        "next_run_at": {"$lte": when},
        "paused": False,
        # {"lease": None} matches null and missing alike.
        "$or": [{"lease": None}, {"lease.expires_at": {"$lte": when}}],
    }
    if isinstance(workflows, Mapping):
        # Only versions this worker registered: one branch per workflow name.
        clause["$and"] = [
            {
                "$or": [
                    {"workflow_id": name, "workflow_version": {"$in": sorted(versions)}}
                    for name, versions in sorted(workflows.items())
                ]
            }
        ]
    else:
        clause["workflow_id"] = {"$in": sorted(workflows)}
    if tenant_id is not None:
        clause["tenant_id"] = tenant_id
    return clause


def _one_or_many(values: tuple[str, ...]) -> Any:
    return values[0] if len(values) == 1 else {"$in": list(values)}


def query_filter(query: RunQuery) -> Document:
    """The filter for every field of ``query`` except ``cursor``/``sort``/``limit``.

    ``meta``/``context`` items compare with MongoDB equality on
    ``meta.<key>``/``context.<key>`` (see docs/mongo.md for how that differs
    from Python ``==`` for lists, ``None`` and embedded documents).
    """
    clauses: list[Document] = []
    workflows = query.workflow_ids()
    if workflows is not None:
        clauses.append({"workflow_id": _one_or_many(workflows)})
    statuses = query.statuses()
    if statuses is not None:
        clauses.append({"status": _one_or_many(tuple(s.value for s in statuses))})
    if query.tenant_id is not None:
        clauses.append({"tenant_id": query.tenant_id})
    if query.run_ids is not None:
        clauses.append({"_id": {"$in": list(query.run_ids)}})
    for field, items in (("meta", query.meta), ("context", query.context)):
        for key, value in (items or {}).items():
            clauses.append({f"{field}.{key}": to_storage(value)})
    created: Document = {}
    if query.created_after is not None:
        created["$gte"] = to_storage(query.created_after)
    if query.created_before is not None:
        created["$lt"] = to_storage(query.created_before)
    if created:
        clauses.append({"created_at": created})
    if query.updated_before is not None:
        clauses.append({"updated_at": {"$lt": to_storage(query.updated_before)}})
    if query.waiting_for_event is not None:
        clauses.append(
            {
                "status": RunStatus.WAITING.value,
                "wait.kind": "event",
                "wait.event": query.waiting_for_event,
            }
        )
    if query.hook_token_hash is not None:
        clauses.append({"wait.hook_token_hash": query.hook_token_hash})
    if query.idempotency_key is not None:
        clauses.append({"idempotency_key": query.idempotency_key})
    return _and(clauses)


def sort_spec(query: RunQuery) -> list[tuple[str, int]]:
    """``query.sort`` with the id as tie-breaker, in the same direction."""
    field, desc = sort_key(query)
    direction = -1 if desc else 1
    return [(field, direction), ("_id", direction)]


def page_filter(query: RunQuery) -> Document:
    """:func:`query_filter` plus the keyset condition of ``query.cursor``.

    Raises:
        ValueError: The cursor is malformed (as in every store).
    """
    base = query_filter(query)
    if query.cursor is None:
        return base
    value, last_id = decode_cursor(query.cursor)
    field, desc = sort_key(query)
    op = "$lt" if desc else "$gt"
    value = to_storage(value)
    after: Document = {"$or": [{field: {op: value}}, {field: value, "_id": {op: last_id}}]}
    return _and([base, after])
