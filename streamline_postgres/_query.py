"""A typed :class:`~streamline_core.store.RunQuery` as SQL: values are always parameters.

Every filter value is passed as a query parameter, never spliced into the
SQL text, so no value can change what the query means. ``meta``/``context``
equality compares JSONB values (``doc->'meta'->key = value::jsonb``): typed,
so ``1`` never matches ``"1"`` and a dict value is a value, never an
operator. JSONB also makes ``1`` equal ``1.0`` as Python does; Python's
``True == 1`` is kept by also accepting the number for a bool (and the bool
for 0/1), so results agree with ``matches_query``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streamline_core.run import RunStatus, decode_cursor
from streamline_core.store import RunQuery, sort_key

from ._codec import encode_value

__all__ = ["where", "order_by", "after_cursor"]


def _json_equal(field: str, key: str, value: Any, clauses: list[str], params: list[Any]) -> None:
    # JSONB equality is JSON's: true is not 1, and 1 equals 1.0.
    clauses.append(f"(doc->'{field}'->%s) = %s::jsonb")
    params.extend((key, encode_value(value, "<query>")))


def where(
    query: RunQuery, extra: tuple[str, ...] = (), extra_params: tuple[Any, ...] = ()
) -> tuple[str, list[Any]]:
    """``("WHERE …" or "", params)`` for ``query``'s filters (cursor and limit aside)."""
    clauses: list[str] = []
    params: list[Any] = []
    workflows = query.workflow_ids()
    if workflows is not None:
        clauses.append("workflow_id = ANY(%s::text[])")
        params.append(list(workflows))
    statuses = query.statuses()
    if statuses is not None:
        clauses.append("status = ANY(%s::text[])")
        params.append([RunStatus(s).value for s in statuses])
    if query.tenant_id is not None:
        clauses.append("tenant_id = %s")
        params.append(query.tenant_id)
    if query.run_ids is not None:
        clauses.append("id = ANY(%s::text[])")
        params.append(list(query.run_ids))
    if query.created_after is not None:
        clauses.append("created_at >= %s")
        params.append(query.created_after)
    if query.created_before is not None:
        clauses.append("created_at < %s")
        params.append(query.created_before)
    if query.updated_before is not None:
        clauses.append("updated_at < %s")
        params.append(query.updated_before)
    if query.waiting_for_event is not None:
        # wait_event holds wait.event only while wait.kind == "event".
        clauses.append("status = 'waiting' AND wait_event = %s")
        params.append(query.waiting_for_event)
    if query.hook_token_hash is not None:
        clauses.append("hook_token_hash = %s")
        params.append(query.hook_token_hash)
    if query.idempotency_key is not None:
        clauses.append("idempotency_key = %s")
        params.append(query.idempotency_key)
    if query.parent_run_id is not None:
        # The very expression of the parent index (schema version 2).
        clauses.append("(doc->>'parent_run_id') = %s")
        params.append(query.parent_run_id)
    for field, filt in (("meta", query.meta), ("context", query.context)):
        for key, value in (filt or {}).items():
            _json_equal(field, key, value, clauses, params)
    clauses.extend(extra)
    params.extend(extra_params)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def order_by(query: RunQuery) -> str:
    """``ORDER BY`` for ``query.sort``, ties broken by id in the same direction."""
    field, desc = sort_key(query)
    direction = "DESC" if desc else "ASC"
    return f"ORDER BY {field} {direction}, id {direction}"


def after_cursor(query: RunQuery) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The keyset condition for ``query.cursor`` (nothing without a cursor).

    Raises:
        ValueError: The cursor is malformed.
    """
    if query.cursor is None:
        return (), ()
    value, last_id = decode_cursor(query.cursor)
    if not isinstance(value, datetime) or not isinstance(last_id, str):
        raise ValueError(f"malformed cursor {query.cursor!r}")
    field, desc = sort_key(query)
    op = "<" if desc else ">"
    return (f"({field}, id) {op} (%s, %s)",), (value, last_id)
