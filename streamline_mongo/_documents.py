"""Run <-> MongoDB document conversion.

A run is stored as the fields of ``run_to_document`` with the id moved to
``_id`` (no separate ``id`` field). Values are normalised before they are
sent, so that what the store returns after a write equals what the server
keeps, on MongoDB and on mongomock alike:

* datetimes become aware UTC, truncated to whole milliseconds (BSON dates
  hold milliseconds; the driver would truncate them anyway);
* enum members become their plain values (mongomock would otherwise keep the
  Python enum object, MongoDB the string).

Four fields are the store's own; readers ignore them:

* ``holds_idempotency_key: true`` marks a run that was created active with an
  idempotency key and has not ended since. The partial unique index that
  makes keyed creates race-safe covers exactly these runs (see
  ``_indexes.IDEMPOTENCY_INDEX``).
* ``is_active`` is ``true`` while the status is draft/running/waiting and
  ``false`` once it is terminal. Partial indexes filter on it by equality,
  which every MongoDB version (and Amazon DocumentDB, and mongomock) reads
  the same way, where ``status: {$in: [...]}`` needs a 6.0 feature level and
  ``$exists``/``$type`` filters are mis-handled by mongomock (DESIGN.md §8).
* ``write_id`` is a fresh id written with every create and transition. When
  a write's answer is lost (a network error after sending, a write-concern
  timeout), the store reads the run back: our ``write_id`` at the revision
  we expected to produce means the write was applied.
* ``output_of_step: i`` stands for ``output``: the run's final output is
  the output of its step ``i`` (the last one), so it is stored once, in
  ``steps.i.output``, and read back into ``output`` (:func:`run_from_mongo`).
  A run's largest final output is then MongoDB's 16 MB, not half of it.

Values BSON cannot hold are refused here with ``ValidationError``, the same
way on both backends (mongomock raises ``TypeError`` for a non-string key
where PyMongo raises ``InvalidDocument``): integers beyond 64 bits and
mapping keys that are not strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from bson.dbref import DBRef
from bson.int64 import Int64

from streamline_core.errors import ValidationError
from streamline_core.run import WorkflowRun, run_from_document, run_to_document

from ._types import Document

__all__ = [
    "KEY_HOLD",
    "ACTIVE_MARK",
    "WRITE_MARK",
    "OUTPUT_OF_STEP",
    "STORE_FIELDS",
    "to_storage",
    "from_storage",
    "run_to_mongo",
    "run_from_mongo",
    "utc_ms",
]

KEY_HOLD = "holds_idempotency_key"
"""Store-internal marker field: this run holds its idempotency key in the unique index."""

ACTIVE_MARK = "is_active"
"""Store-internal field: ``True`` for an active status, ``False`` for a terminal one."""

WRITE_MARK = "write_id"
"""Store-internal field: the id of the write that produced the stored revision."""

OUTPUT_OF_STEP = "output_of_step"
"""Store-internal field: ``output`` is the output of this step (by index), stored there only."""

STORE_FIELDS = frozenset({KEY_HOLD, ACTIVE_MARK, WRITE_MARK, OUTPUT_OF_STEP})
"""Fields the store manages itself; never part of a patch."""


def utc_ms(value: datetime) -> datetime:
    """``value`` as aware UTC, truncated to the millisecond (a naive value is taken as UTC)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


_INT64 = range(-(2**63), 2**63)


def to_storage(value: Any) -> Any:
    """``value`` normalised for BSON: see the module docstring.

    Raises:
        ValidationError: ``value`` holds an integer beyond 64 bits or a
            mapping key that is not a string.
    """
    if isinstance(value, datetime):
        return utc_ms(value)
    if isinstance(value, Enum):
        return to_storage(value.value)
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        raise ValidationError(f"integer {value} does not fit in 64 bits (a MongoDB limit)")
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise ValidationError(f"mapping key {key!r} is not a string (a MongoDB limit)")
        return {k: to_storage(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_storage(v) for v in value]
    return value


def from_storage(value: Any) -> Any:
    """``value`` as read, with BSON's own types turned back into plain values.

    PyMongo decodes a sub-document shaped ``{"$ref": ..., "$id": ...}`` as a
    ``bson.DBRef``, and may hand back 64-bit integers as ``bson.Int64``: a
    step's output must read back as the JSON value it wrote.
    """
    t = type(value)
    if t is dict:
        return {k: from_storage(v) for k, v in value.items()}
    if t is list:
        return [from_storage(v) for v in value]
    if t is str or t is int or t is float or t is bool or value is None:
        return value
    if isinstance(value, Int64):
        return int(value)
    if isinstance(value, DBRef):
        return from_storage(dict(value.as_doc()))
    if isinstance(value, Mapping):  # SON and other mapping types
        return {str(k): from_storage(v) for k, v in value.items()}
    return value


def run_to_mongo(run: WorkflowRun) -> Document:
    """The document to insert for ``run``: ``_id`` first, no ``id`` field, store fields last."""
    doc = to_storage(run_to_document(run))
    out: Document = {"_id": doc.pop("id"), **doc}
    out[ACTIVE_MARK] = out.get("status") in _ACTIVE_VALUES
    return out


_ACTIVE_VALUES = frozenset({"draft", "running", "waiting"})


def run_from_mongo(doc: Mapping[str, Any]) -> WorkflowRun:
    """A run from a stored document; an invalid one raises ``DataCorruptionError``."""
    plain = from_storage(dict(doc))
    step = plain.pop(OUTPUT_OF_STEP, None)
    if type(step) is int:
        steps = plain.get("steps")
        if isinstance(steps, list) and 0 <= step < len(steps) and isinstance(steps[step], dict):
            plain["output"] = steps[step].get("output")
    return run_from_document(plain)
