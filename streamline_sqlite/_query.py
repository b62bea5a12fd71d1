"""Turning a :class:`~streamline_core.store.RunQuery` into SQL.

Every filter on a column is exact in SQL. ``meta``/``context`` equality is
decided in Python with ``==`` on the decoded JSON, because that is the
contract's meaning (``matches_query``): ``True == 1 == 1.0``, while SQL and
JSON typing disagree at the edges (``json_extract`` returns ``1`` for
``true``, ``NULL`` for both ``null`` and a missing key, floats go through
SQLite's own parser). SQL still narrows the candidates with ``json_extract``
where that can only keep too many rows, never too few: string values and
integers that are exact as doubles, under keys that need no path quoting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamline_core.run import RunStatus, decode_cursor
from streamline_core.store import RunQuery, json_equal, sort_key
from streamline_sqlite._codec import micros

__all__ = ["Where", "where", "order_by", "after_cursor", "dicts_match"]

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXACT_INT = 2**53


@dataclass(frozen=True, slots=True)
class Where:
    """A WHERE clause and what SQL could not decide.

    Attributes:
        sql: ``"WHERE …"``, or ``""`` when nothing is filtered.
        params: Its parameters, in order.
        python: Whether ``meta``/``context`` filters remain to check in Python.
    """

    sql: str
    params: tuple[Any, ...]
    python: bool


def _in_list(column: str, values: list[str], clauses: list[str], params: list[Any]) -> None:
    if len(values) == 1:
        # Equality lets an index on (column, created_at, id) deliver the sort too.
        clauses.append(f"{column} = ?")
        params.append(values[0])
        return
    # One JSON parameter instead of N placeholders: constant SQL text (cached
    # statements) and no limit on the number of values.
    clauses.append(f"{column} IN (SELECT value FROM json_each(?))")
    params.append(json.dumps(values))


def _narrowing(field: str, filt: Mapping[str, Any], clauses: list[str], params: list[Any]) -> None:
    for key, value in filt.items():
        if not _PLAIN_KEY.fullmatch(key):
            continue
        # json_extract yields 1/0 for true/false, so SQL only narrows and
        # dicts_match keeps booleans apart from numbers; an int or a str never
        # equals anything SQL drops.
        if isinstance(value, str) or (isinstance(value, int) and -_EXACT_INT < value < _EXACT_INT):
            clauses.append("json_extract(doc, ?) = ?")
            params.extend((f"$.{field}.{key}", value))


def where(
    query: RunQuery, extra: tuple[str, ...] = (), extra_params: tuple[Any, ...] = ()
) -> Where:
    """The WHERE clause for ``query``'s filters (cursor and limit aside).

    Args:
        query: The typed query.
        extra: More SQL conditions to AND in (the keyset condition).
        extra_params: Their parameters.
    """
    clauses: list[str] = []
    params: list[Any] = []
    workflows = query.workflow_ids()
    if workflows is not None:
        _in_list("workflow_id", list(workflows), clauses, params)
    statuses = query.statuses()
    if statuses is not None:
        _in_list("status", [RunStatus(s).value for s in statuses], clauses, params)
    if query.tenant_id is not None:
        clauses.append("tenant_id = ?")
        params.append(query.tenant_id)
    if query.run_ids is not None:
        _in_list("id", list(query.run_ids), clauses, params)
    if query.created_after is not None:
        clauses.append("created_at >= ?")
        params.append(micros(query.created_after))
    if query.created_before is not None:
        clauses.append("created_at < ?")
        params.append(micros(query.created_before))
    if query.updated_before is not None:
        clauses.append("updated_at < ?")
        params.append(micros(query.updated_before))
    if query.waiting_for_event is not None:
        # wait_event holds wait.event only while wait.kind == "event".
        clauses.append("status = 'waiting' AND wait_event = ?")
        params.append(query.waiting_for_event)
    if query.hook_token_hash is not None:
        clauses.append("hook_token_hash = ?")
        params.append(query.hook_token_hash)
    if query.idempotency_key is not None:
        clauses.append("idempotency_key = ?")
        params.append(query.idempotency_key)
    if query.parent_run_id is not None:
        clauses.append("parent_run_id = ?")
        params.append(query.parent_run_id)
    python = False
    for field, filt in (("meta", query.meta), ("context", query.context)):
        if filt:
            python = True
            _narrowing(field, filt, clauses, params)
    clauses.extend(extra)
    params.extend(extra_params)
    sql = "WHERE " + " AND ".join(clauses) if clauses else ""
    return Where(sql, tuple(params), python)


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
    if not isinstance(value, datetime):
        raise ValueError(f"malformed cursor {query.cursor!r}")
    field, desc = sort_key(query)
    op = "<" if desc else ">"
    return (f"({field}, id) {op} (?, ?)",), (micros(value), last_id)


def dicts_match(meta: str | None, context: str | None, query: RunQuery) -> bool:
    """Whether the stored ``meta``/``context`` JSON satisfy the query's filters."""
    for text, filt in ((meta, query.meta), (context, query.context)):
        if not filt:
            continue
        data = json.loads(text) if text is not None else {}
        if not isinstance(data, dict):
            return False
        for key, value in filt.items():
            if key not in data or not json_equal(data[key], value):
                return False
    return True
