"""Converting runs to and from their row: JSON text plus indexed columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from streamline_core.errors import DataCorruptionError
from streamline_core.run import WorkflowRun, run_from_document

__all__ = ["COLUMNS", "columns", "encode_doc", "load_run", "micros"]

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


def columns(run: WorkflowRun) -> tuple[Any, ...]:
    """The column values of ``run``, in :data:`COLUMNS` order."""
    lease = run.lease
    wait = run.wait
    return (
        run.workflow_id,
        run.tenant_id,
        run.status.value,
        1 if run.paused else 0,
        _micros_or_none(run.next_run_at),
        run.priority,
        None if lease is None else lease.owner,
        None if lease is None else micros(lease.expires_at),
        run.revision,
        run.idempotency_key,
        micros(run.created_at),
        micros(run.updated_at),
        _micros_or_none(run.ended_at),
        wait.event if wait is not None and wait.kind == "event" else None,
        None if wait is None else wait.hook_token_hash,
    )


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
