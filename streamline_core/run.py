"""The run document: one record per workflow run, the unit every store persists.

Model layer: imports only ``errors``.

A :class:`WorkflowRun` is a pydantic v2 model whose field names are also the
storage field names (snake_case; Mongo keeps the id in ``_id``). It is a
*state-machine* record, not an event history: ``steps`` holds one
:class:`StepState` per declared step, ``current_step_id`` is the cursor, and
``revision`` is the compare-and-set token bumped by every write.

Status machine::

    draft → running ⇄ waiting → done
               │         │
               └→ failed / cancelled (terminal)

Documents read back from a store go through :func:`run_from_document`, which
turns any validation failure into :class:`~streamline_core.errors.DataCorruptionError`.
"""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamline_core.errors import DataCorruptionError

__all__ = [
    "RunStatus",
    "StepStatus",
    "WaitKind",
    "WaitState",
    "RunError",
    "StepState",
    "Compensation",
    "Lease",
    "MailboxEvent",
    "WorkflowRun",
    "RunPage",
    "TERMINAL_STATUSES",
    "ACTIVE_STATUSES",
    "new_run_id",
    "run_from_document",
    "run_to_document",
]


class RunStatus(StrEnum):
    """Lifecycle status of a run."""

    DRAFT = "draft"
    RUNNING = "running"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED}
)
ACTIVE_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.DRAFT, RunStatus.RUNNING, RunStatus.WAITING}
)


class StepStatus(StrEnum):
    """Status of one step inside a run."""

    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


WaitKind = Literal["human", "event", "timer", "retry", "children"]


def _aware(value: datetime | None) -> datetime | None:
    # Some backends (SQLite JSON, Mongo without tz_aware) hand back naive UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class _Model(BaseModel):
    # NaN/Infinity serialise as JSON's non-standard constants, never as a
    # silent null: a store that writes JSON sees them and refuses the value.
    model_config = ConfigDict(
        extra="ignore", validate_assignment=False, ser_json_inf_nan="constants"
    )


class WaitState(_Model):
    """Why a run (or step) is suspended.

    Attributes:
        kind: ``human`` (``ctx.wait``), ``event`` (``ctx.wait_for``),
            ``timer`` (``ctx.sleep``), ``retry`` (backoff before the next attempt)
            or ``children`` (a join on child runs; ``data`` holds the join).
        reason: Human-readable reason given to ``ctx.wait``.
        data: JSON data attached to the wait (shown to whoever resumes it).
        event: Event name for ``kind == "event"``.
        until: When a timer/retry is due, or when a wait times out.
        hook_token_hash: SHA-256 of the hook token that may resume this wait.
    """

    kind: WaitKind
    reason: str | None = None
    data: Any = None
    event: str | None = None
    until: datetime | None = None
    hook_token_hash: str | None = None

    _v_until = field_validator("until")(_aware)


class RunError(_Model):
    """Error recorded on a run or a step.

    ``traceback`` is the formatted traceback of the exception a step raised
    (on the step's error; at most a few kB, the frames nearest the raise kept).
    """

    code: str
    message: str
    step_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    traceback: str | None = None


Compensation = Literal["pending", "done", "failed"]
"""Where a saga stands: on a run (``WorkflowRun.compensation``) and on each compensated step."""


class StepState(_Model):
    """Progress record of one declared step.

    ``checkpoint`` is what the step saved while it ran, kept across attempts
    and recoveries and cleared when it completes or is rewound: ``None``,
    ``{"value": v}`` (``ctx.checkpoint(v)``) or ``{"maps": {"<n>": {"items":
    fingerprint, "count": n, "results": {"<index>": result}}}}`` (the finished items of
    the step's n-th ``ctx.map``). ``compensation`` is set on ``done`` steps
    with a ``compensate`` handler once their run fails: ``pending``, then
    ``done`` or ``failed``.
    """

    step_id: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    output: Any = None
    error: RunError | None = None
    wait: WaitState | None = None
    checkpoint: Any = None
    compensation: Compensation | None = None

    _v_times = field_validator("started_at", "ended_at")(_aware)


class Lease(_Model):
    """A worker's time-limited claim on a run."""

    owner: str
    expires_at: datetime

    _v_exp = field_validator("expires_at")(_aware)


class MailboxEvent(_Model):
    """A targeted event that arrived before the run waited for it."""

    name: str
    data: Any = None
    at: datetime

    _v_at = field_validator("at")(_aware)


class WorkflowRun(_Model):
    """One run of a workflow, exactly as stored.

    See DESIGN.md §3 for the meaning of each field. A child run (started by a
    step's ``ctx.run_child``/``start_child``) has ``parent_run_id`` and
    ``parent_step_id`` set; ``detached`` children are left alone when the
    parent is cancelled. ``revision`` increases by
    one (at least) on every write and is the token of ``Store.transition``.
    ``epoch`` counts the times the cursor was moved from outside (``rewind_to``):
    a step's outcome is committed only into the epoch its execution began in,
    so a result computed before a rewind never lands after it.
    ``gotos`` counts the jumps of ``ctx.goto`` (bounded by ``max_gotos``);
    ``compensation`` is ``pending`` while a failed run's saga runs (the run
    is ``running``), then ``done`` or ``failed``; ``None`` when no saga ran.

    Flow control (``engine.workflow(..., concurrency=, rate_limit=)``) is
    stored on the run at ``start``, so a claimer needs no definition:
    ``concurrency_key``/``concurrency_limit`` name the run's bucket (with
    ``workflow_id``) and its slots; ``rate_key``/``rate_limit``/``rate_period``
    its rate bucket; ``began_at`` is when a claim first leased it (the instant
    the rate limit counts). ``""`` is the key of a workflow-wide bucket.
    """

    id: str
    workflow_id: str
    workflow_version: str = "1"
    tenant_id: str | None = None
    parent_run_id: str | None = None
    parent_step_id: str | None = None
    detached: bool = False
    status: RunStatus = RunStatus.RUNNING
    paused: bool = False
    current_step_id: str | None = None
    steps: list[StepState] = Field(default_factory=list)
    context: dict[str, Any] = Field(default_factory=dict)
    input: Any = None
    output: Any = None
    error: RunError | None = None
    wait: WaitState | None = None
    mailbox: list[MailboxEvent] = Field(default_factory=list)
    next_run_at: datetime | None = None
    priority: int = 0
    lease: Lease | None = None
    recoveries: int = 0
    epoch: int = 0
    gotos: int = 0
    compensation: Compensation | None = None
    revision: int = 0
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    rate_key: str | None = None
    rate_limit: int | None = None
    rate_period: float | None = None
    began_at: datetime | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None

    _v_times = field_validator("next_run_at", "created_at", "updated_at", "ended_at", "began_at")(
        _aware
    )

    @property
    def is_limited(self) -> bool:
        """Whether flow control applies: the run carries a concurrency or a rate key."""
        return self.concurrency_key is not None or self.rate_key is not None

    @property
    def is_terminal(self) -> bool:
        """True for ``done``, ``failed`` and ``cancelled``."""
        return self.status in TERMINAL_STATUSES

    def step(self, step_id: str) -> StepState | None:
        """The state of ``step_id``, or ``None`` when the run has no such step."""
        for s in self.steps:
            if s.step_id == step_id:
                return s
        return None

    def step_index(self, step_id: str) -> int:
        """Index of ``step_id`` in ``steps`` (``-1`` when absent)."""
        for i, s in enumerate(self.steps):
            if s.step_id == step_id:
                return i
        return -1

    @property
    def outputs(self) -> dict[str, Any]:
        """Outputs of the steps that are done or skipped, by step id."""
        return {
            s.step_id: s.output
            for s in self.steps
            if s.status in (StepStatus.DONE, StepStatus.SKIPPED)
        }


class RunPage(BaseModel):
    """One page of query results.

    Attributes:
        items: The runs on this page.
        next_cursor: Pass to the same query's ``cursor`` for the next page;
            ``None`` on the last page.
    """

    items: list[WorkflowRun]
    next_cursor: str | None = None


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_run_id(at: datetime | None = None) -> str:
    """A 26-character, time-sortable, unique id (ULID layout: 48-bit ms time + 80 random bits)."""
    ms = int(at.timestamp() * 1000) if at is not None else time.time_ns() // 1_000_000
    value = (ms & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def run_to_document(run: WorkflowRun) -> dict[str, Any]:
    """The storage document of ``run`` (python values; datetimes stay datetimes)."""
    return run.model_dump()


def run_from_document(doc: Any) -> WorkflowRun:
    """Validate a stored document; any mismatch raises ``DataCorruptionError``.

    Args:
        doc: A mapping read from a store (Mongo's ``_id`` is accepted for ``id``).
    """
    if isinstance(doc, dict) and "_id" in doc and "id" not in doc:
        doc = {**doc, "id": doc["_id"]}
    try:
        return WorkflowRun.model_validate(doc)
    except pydantic.ValidationError as exc:
        run_id = doc.get("id") if isinstance(doc, dict) else None
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise DataCorruptionError(
            f"stored run {run_id!r} is not a valid run document: {problems}",
            run_id=str(run_id) if run_id is not None else None,
        ) from None


def encode_cursor(sort_value: Any, run_id: str) -> str:
    """Opaque keyset cursor: the sort key and id of the last item of a page."""
    if isinstance(sort_value, datetime):
        sort_value = sort_value.isoformat()
    raw = json.dumps([sort_value, run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, str]:
    """Inverse of :func:`encode_cursor`; a malformed cursor raises ``ValueError``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value, run_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except Exception as exc:
        raise ValueError(f"malformed cursor {cursor!r}") from exc
    if not isinstance(run_id, str):
        raise ValueError(f"malformed cursor {cursor!r}")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            pass
    return value, run_id
