"""Converting runs to and from their row: JSON text plus indexed columns."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pydantic_core

from streamline_core.errors import DataCorruptionError
from streamline_core.run import WorkflowRun, run_from_document
from streamline_core.store import UNSET

__all__ = [
    "COLUMNS",
    "columns",
    "encode_doc",
    "encode_run",
    "load_run",
    "micros",
    "stored_values",
    "changed_columns",
    "with_write_id",
    "own_write",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

# The indexed copies of run fields, in the order :func:`columns` yields them.
COLUMNS = (
    "workflow_id",
    "tenant_id",
    "status",
    "paused",
    "next_run_at",
    "priority",
    "lease_owner",
    "lease_expires_at",
    "revision",
    "idempotency_key",
    "created_at",
    "updated_at",
    "ended_at",
    "wait_event",
    "hook_token_hash",
    "parent_run_id",
    "concurrency_key",
    "rate_key",
    "began_at",
    "concurrency_limit",
    "rate_limit",
    "rate_period",
)


def micros(value: datetime) -> int:
    """``value`` as integer microseconds since the epoch (naive means UTC).

    Integer arithmetic on timedelta keeps this exact, so column order is
    exactly datetime order.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def _micros_or_none(value: datetime | None) -> int | None:
    return None if value is None else micros(value)


def _lease_owner(run: WorkflowRun) -> str | None:
    return None if run.lease is None else run.lease.owner


def _lease_expires(run: WorkflowRun) -> int | None:
    return None if run.lease is None else micros(run.lease.expires_at)


def _wait_event(run: WorkflowRun) -> str | None:
    wait = run.wait
    return wait.event if wait is not None and wait.kind == "event" else None


def _hook(run: WorkflowRun) -> str | None:
    return None if run.wait is None else run.wait.hook_token_hash


# (run field it derives from, how), in COLUMNS order.
_DERIVED: tuple[tuple[str, Callable[[WorkflowRun], Any]], ...] = (
    ("workflow_id", lambda run: run.workflow_id),
    ("tenant_id", lambda run: run.tenant_id),
    ("status", lambda run: run.status.value),
    ("paused", lambda run: 1 if run.paused else 0),
    ("next_run_at", lambda run: _micros_or_none(run.next_run_at)),
    ("priority", lambda run: run.priority),
    ("lease", _lease_owner),
    ("lease", _lease_expires),
    ("revision", lambda run: run.revision),
    ("idempotency_key", lambda run: run.idempotency_key),
    ("created_at", lambda run: micros(run.created_at)),
    ("updated_at", lambda run: micros(run.updated_at)),
    ("ended_at", lambda run: _micros_or_none(run.ended_at)),
    ("wait", _wait_event),
    ("wait", _hook),
    ("parent_run_id", lambda run: run.parent_run_id),
    ("concurrency_key", lambda run: run.concurrency_key),
    ("rate_key", lambda run: run.rate_key),
    ("began_at", lambda run: _micros_or_none(run.began_at)),
    ("concurrency_limit", lambda run: run.concurrency_limit),
    ("rate_limit", lambda run: run.rate_limit),
    ("rate_period", lambda run: run.rate_period),
)


def columns(run: WorkflowRun) -> tuple[Any, ...]:
    """The column values of ``run``, in :data:`COLUMNS` order."""
    return tuple(derive(run) for _, derive in _DERIVED)


_COLUMNS_OF: dict[str, tuple[int, ...]] = {}
for _index, (_field, _) in enumerate(_DERIVED):
    _COLUMNS_OF[_field] = (*_COLUMNS_OF.get(_field, ()), _index)
del _index, _field


def changed_columns(
    old: Sequence[Any], run: WorkflowRun, fields: Iterable[str]
) -> tuple[tuple[int, ...], list[Any]]:
    """The columns (indexes, ascending) whose value ``run`` changes, and their new values.

    Only columns derived from ``fields`` (the run fields a patch wrote) are
    recomputed; ``old`` holds the stored values of all of them.
    """
    found: list[tuple[int, Any]] = []
    for field in fields:
        for index in _COLUMNS_OF.get(field, ()):
            value = _DERIVED[index][1](run)
            if value != old[index]:
                found.append((index, value))
    found.sort(key=lambda pair: pair[0])
    return tuple(index for index, _ in found), [value for _, value in found]


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-compatible")


# allow_nan=False: NaN is not JSON, and SQLite's json_set would reject the
# whole document later, poisoning every claim that touches it.
_ENCODER = json.JSONEncoder(default=_json_default, allow_nan=False, separators=(",", ":"))


def encode_doc(doc: dict[str, Any], run_id: str) -> str:
    """``doc`` (a ``run_to_document`` shape) as compact JSON text.

    This is the single serialisation a write performs.

    Raises:
        DataCorruptionError: A value cannot be stored as JSON (a NaN, a set,
            an arbitrary object): writing it would corrupt the run.
    """
    try:
        return _ENCODER.encode(doc)
    except (TypeError, ValueError) as exc:
        raise DataCorruptionError(
            f"run {run_id!r} cannot be stored as JSON: {exc}", run_id=run_id
        ) from None


_SCALARS = frozenset({str, int, bool, type(None)})


class _Unstorable(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
        self.path: list[str] = []


def _stored_under(key: str, value: Any) -> Any:
    """:func:`_stored` of the value at ``key``, which a refusal's path then names."""
    try:
        return _stored(value)
    except _Unstorable as exc:
        exc.path.append(key)
        raise


def _stored(value: Any) -> Any:
    # The path of a bad value is assembled while unwinding, so the common
    # case builds no strings.
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    raise _Unstorable(f"a {type(key).__name__} key")
                key = str.__str__(key)
            # Scalars and datetimes inline: a step's record is mostly those,
            # and a call per value would double the cost of this walk.
            item_kind = type(item)
            if item_kind in _SCALARS:
                out[key] = item
            elif item_kind is datetime:
                out[key] = item.isoformat()
            else:
                out[key] = _stored_under(key, item)
        return out
    if kind is list or kind is tuple:
        return [_stored_under(str(index), item) for index, item in enumerate(value)]
    if kind is datetime:
        return value.isoformat()
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        raise _Unstorable(f"the float {value!r}")
    if isinstance(value, str):  # a StrEnum status, any str subclass: its text
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise _Unstorable(f"a {kind.__name__}")


# Paths whose value is a datetime *field* of the run's models (not JSON data
# inside ``output``, ``context`` and the like). A datetime there validates to
# the same value whether given as an object or as ISO text, so it skips the
# conversion; so do the datetime fields of a whole step, lease or wait.
_DATETIME_FIELD = re.compile(
    r"(next_run_at|created_at|updated_at|ended_at|lease\.expires_at|wait\.until"
    r"|steps\.\d+\.(started_at|ended_at|wait\.until)|mailbox\.\d+\.at)"
)
_RECORD_DATETIMES = (
    (re.compile(r"steps\.\d+"), frozenset({"started_at", "ended_at"})),
    (re.compile(r"lease"), frozenset({"expires_at"})),
    (re.compile(r"(steps\.\d+\.)?wait"), frozenset({"until"})),
)


@functools.lru_cache(maxsize=1024)
def _datetime_fields(path: str) -> frozenset[str] | bool:
    """True: ``path`` is a datetime field; a set: the datetime fields of the record at ``path``."""
    if _DATETIME_FIELD.fullmatch(path):
        return True
    for pattern, datetimes in _RECORD_DATETIMES:
        if pattern.fullmatch(path):
            return datetimes
    return False


def _stored_at(path: str, value: Any) -> Any:
    kind = type(value)
    if kind is datetime or kind is dict:
        fields = _datetime_fields(path)
        if fields is True and kind is datetime:
            return value
        if fields and kind is dict and all(type(key) is str for key in value):
            assert isinstance(fields, frozenset)
            out: dict[str, Any] = {}
            for key, item in value.items():
                if type(item) is datetime and key in fields:
                    out[key] = item
                else:
                    out[key] = _stored_under(key, item)
            return out
    return _stored(value)


def stored_values(patch: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """``patch`` with each value as a JSON store would give it back.

    Datetimes in JSON data become their ISO text (as :func:`encode_doc`
    writes them), tuples lists, ``str``/``int`` subclasses (statuses) plain
    values, so a run validated from a patched document equals the run read
    back later; datetime *fields* stay datetimes (they validate to the same
    value either way). The result shares no mutable data with ``patch``.

    Raises:
        DataCorruptionError: A value JSON cannot hold (a NaN, a set, an
            arbitrary object, a non-string key): writing it would corrupt the run.
    """
    out: dict[str, Any] = {}
    for path, value in patch.items():
        try:
            out[path] = value if value is UNSET else _stored_at(path, value)
        except _Unstorable as exc:
            where = ".".join([path, *reversed(exc.path)])
            raise DataCorruptionError(
                f"run {run_id!r} cannot be stored as JSON: {exc.what} at {where!r}",
                run_id=run_id,
            ) from None
    return out


def encode_run(run: WorkflowRun) -> str:
    """``run`` as the compact JSON text a row holds.

    ``None`` fields are left out: ``None`` is every optional field's default,
    so nothing is lost, and the row is a third smaller (fewer WAL bytes,
    faster to decode).

    Raises:
        DataCorruptionError: A value cannot be stored as JSON (a NaN, an
            arbitrary object): writing it would corrupt the run.
    """
    try:
        text = run.model_dump_json(exclude_none=True)
    except pydantic_core.PydanticSerializationError as exc:
        raise DataCorruptionError(
            f"run {run.id!r} cannot be stored as JSON: {exc}", run_id=run.id
        ) from None
    if "NaN" in text or "Infinity" in text:
        # Maybe only inside a string; the exact encoder decides (and refuses
        # the non-finite floats JSON cannot hold).
        return encode_doc(run.model_dump(exclude_none=True), run.id)
    return text


def load_run(text: str | bytes) -> WorkflowRun:
    """Validate a stored ``doc``; anything invalid raises ``DataCorruptionError``."""
    try:
        return WorkflowRun.model_validate_json(text)
    except pydantic.ValidationError:
        pass
    # Slow path, only for bad documents: run_from_document words the error.
    try:
        doc = json.loads(text)
    except ValueError:
        raise DataCorruptionError("stored run document is not valid JSON") from None
    return run_from_document(doc)


WRITE_ID_KEY = "_write_id"
"""The document key holding the id of the write that produced the stored revision."""


def with_write_id(text: str, write_id: str | None) -> str:
    """``text`` (a JSON object) with ``write_id`` under :data:`WRITE_ID_KEY` (readers ignore it)."""
    if write_id is None:
        return text
    return f"{text[:-1]},{json.dumps(WRITE_ID_KEY)}:{json.dumps(write_id)}}}"


def own_write(text: str, write_id: str) -> WorkflowRun | None:
    """The stored run, when ``text`` was written by the write ``write_id``."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get(WRITE_ID_KEY) != write_id:
        return None
    return run_from_document(doc)
