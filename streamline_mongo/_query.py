"""Typed queries -> MongoDB filters.

Callers never pass raw query documents: :class:`~streamline_core.store.RunQuery`
and the claim conditions are translated here, using only operators that
behave the same on MongoDB and mongomock (equality, ``$eq``, ``$in``,
``$lt``/``$lte``/``$gte``, ``$or``, ``$and``; DESIGN.md §8).

Every value that comes from a caller is matched as a value, never read as an
operator: it goes in ``{"$eq": value}`` (or in the list of an ``$in``), so
``meta={"user": {"$ne": "x"}}`` matches runs whose ``meta.user`` *is* that
sub-document, not every run. Field names under ``meta``/``context`` and ids
are checked too (:func:`check_run_id`, :func:`check_key`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from streamline_core.errors import ValidationError
from streamline_core.run import ACTIVE_STATUSES, RunStatus, decode_cursor
from streamline_core.store import RunQuery, WorkflowFilter, sort_key

from ._documents import ACTIVE_MARK, to_storage
from ._types import Document

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "claimable_filter",
    "free_filter",
    "expired_filter",
    "ranks_before",
    "check_run_id",
    "check_key",
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


def check_run_id(run_id: Any, what: str = "run id") -> str:
    """``run_id`` when it is a string; anything else is refused, never sent.

    A query document built from a dict id (``{"$ne": None}``) would match an
    arbitrary run: ids are checked at the store boundary.

    Raises:
        ValidationError: ``run_id`` is not a string.
    """
    if type(run_id) is not str:
        raise ValidationError(f"{what} must be a string, not {type(run_id).__name__}")
    return run_id


def check_key(field: str, key: Any) -> str:
    """A ``meta``/``context`` filter key, refused when it would be read as a path operator.

    Raises:
        ValidationError: ``key`` is not a string, is empty, or has a part
            that is empty or starts with ``$``.
    """
    if type(key) is not str or not key or "\x00" in key:
        raise ValidationError(f"{field} filter key must be a non-empty string: {key!r}")
    if any(not part or part.startswith("$") for part in key.split(".")):
        raise ValidationError(
            f"{field} filter key {key!r} cannot be matched: a part is empty or starts with '$'"
        )
    return key


def _string(value: Any, what: str) -> str:
    if type(value) is not str:
        raise ValidationError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _eq(value: Any) -> Document:
    return {"$eq": value}


def claimable_filter(now: datetime, workflows: WorkflowFilter, tenant_id: str | None) -> Document:
    """The claimable conditions of the Store contract except the lease clause.

    :func:`free_filter` and :func:`expired_filter` add the lease clause in its
    two forms, each served by an index of its own (``_indexes``). ``is_active``
    repeats ``status`` so that the partial claim indexes can serve the query.
    ``next_run_at <= now`` also excludes a null ``next_run_at``: comparison
    operators never match null or missing values.
    """
    when = to_storage(now)
    clause: Document = {
        ACTIVE_MARK: True,
        "status": {"$in": ACTIVE},
        "next_run_at": {"$lte": when},
        "paused": False,
    }
    if isinstance(workflows, Mapping):
        # Only versions this worker registered: one branch per workflow name.
        clause["$and"] = [
            {
                "$or": [
                    {
                        "workflow_id": _eq(_string(name, "workflow name")),
                        "workflow_version": {"$in": sorted(versions)},
                    }
                    for name, versions in sorted(workflows.items())
                ]
            }
        ]
    else:
        clause["workflow_id"] = {"$in": sorted(_string(w, "workflow name") for w in workflows)}
    if tenant_id is not None:
        clause["tenant_id"] = _eq(_string(tenant_id, "tenant_id"))
    return clause


def free_filter(base: Document) -> Document:
    """Claimable runs nobody holds a lease on (``{"lease": None}``: null or missing)."""
    return {**base, "lease": None}


SERVER_NOW_EXPIRED: Document = {"$expr": {"$lte": ["$lease.expires_at", "$$NOW"]}}
"""``lease.expires_at <= the server's clock`` (``$$NOW``, MongoDB 4.2+)."""

_ANY_DATE = datetime(1970, 1, 1, tzinfo=UTC)


def expired_filter(base: Document, now: datetime, *, server_clock: bool = False) -> Document:
    """Claimable runs whose lease expired (the ones a takeover may concern).

    With ``server_clock`` the expiry is judged by the server's clock
    (``$$NOW``), not ``now``; the range on ``lease.expires_at`` keeps the
    expired-lease index in use and leaves out runs without a lease (an
    aggregation comparison ranks a missing value below every date).
    """
    if server_clock:
        return {**base, "lease.expires_at": {"$gte": _ANY_DATE}, **SERVER_NOW_EXPIRED}
    return {**base, "lease.expires_at": {"$lte": to_storage(now)}}


def ranks_before(base: Document, priority: Any, next_run_at: Any, run_id: str) -> Document:
    """``base`` restricted to runs that come before ``(priority, next_run_at, run_id)``
    in claim order (priority descending, due time ascending, id ascending)."""
    before: Document = {
        "$or": [
            {"priority": {"$gt": priority}},
            {"priority": _eq(priority), "next_run_at": {"$lt": next_run_at}},
            {"priority": _eq(priority), "next_run_at": _eq(next_run_at), "_id": {"$lt": run_id}},
        ]
    }
    return {**base, "$and": [*base.get("$and", []), before]}


def _typed_eq(value: Any) -> Document:
    # MongoDB keeps true apart from 1 and mongomock does not: naming the BSON
    # type gives both the server's answer.
    if isinstance(value, bool):
        return {"$eq": value, "$type": "bool"}
    if isinstance(value, int | float):
        return {"$eq": value, "$type": "number"}
    return _eq(value)


def _one_or_many(values: tuple[str, ...], what: str) -> Any:
    checked = [_string(v, what) for v in values]
    return _eq(checked[0]) if len(checked) == 1 else {"$in": checked}


def query_filter(query: RunQuery) -> Document:
    """The filter for every field of ``query`` except ``cursor``/``sort``/``limit``.

    ``meta``/``context`` items compare with MongoDB equality on
    ``meta.<key>``/``context.<key>`` (see docs/mongo.md for how that differs
    from Python ``==`` for lists, ``None`` and embedded documents).

    Raises:
        ValidationError: An id, name or key is not a string, or a key would
            be read as an operator.
    """
    clauses: list[Document] = []
    workflows = query.workflow_ids()
    if workflows is not None:
        clauses.append({"workflow_id": _one_or_many(workflows, "workflow_id")})
    statuses = query.statuses()
    if statuses is not None:
        clauses.append({"status": _one_or_many(tuple(s.value for s in statuses), "status")})
    if query.tenant_id is not None:
        clauses.append({"tenant_id": _eq(_string(query.tenant_id, "tenant_id"))})
    if query.run_ids is not None:
        if isinstance(query.run_ids, str | Mapping):
            raise ValidationError("run_ids must be a sequence of run ids")
        clauses.append({"_id": {"$in": [check_run_id(r) for r in query.run_ids]}})
    for field, items in (("meta", query.meta), ("context", query.context)):
        if items is not None and not isinstance(items, Mapping):
            raise ValidationError(f"{field} filter must be a mapping of key to value")
        for key, value in (items or {}).items():
            clauses.append({f"{field}.{check_key(field, key)}": _typed_eq(to_storage(value))})
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
                "wait.event": _eq(_string(query.waiting_for_event, "event name")),
            }
        )
    if query.hook_token_hash is not None:
        clauses.append(
            {"wait.hook_token_hash": _eq(_string(query.hook_token_hash, "hook_token_hash"))}
        )
    if query.idempotency_key is not None:
        clauses.append({"idempotency_key": _eq(_string(query.idempotency_key, "idempotency_key"))})
    if query.parent_run_id is not None:
        clauses.append({"parent_run_id": _eq(_string(query.parent_run_id, "parent_run_id"))})
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
    if type(last_id) is not str:  # a crafted cursor must not smuggle in an operator
        raise ValueError("malformed cursor: its id is not a string")
    after: Document = {"$or": [{field: {op: value}}, {field: _eq(value), "_id": {op: last_id}}]}
    return _and([base, after])
