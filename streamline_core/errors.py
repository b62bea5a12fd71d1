"""Errors raised by Streamline, and the control-flow signals it uses internally.

Model layer, bottom: imports nothing of streamline_core.

Every error a caller can see is a :class:`WorkflowError` carrying a stable
:class:`ErrorCode`, the HTTP ``status`` a web layer should answer with, and the
``run_id`` / ``step_id`` it concerns. No backend exception (``pymongo.errors.*``,
``sqlite3.*``) ever reaches a caller: stores translate them into the store
errors below.

The tree::

    Exception
    └── WorkflowError                      .code .status .run_id .step_id
        ├── WorkflowNotFoundError          WORKFLOW_NOT_FOUND    404
        ├── StepNotFoundError              STEP_NOT_FOUND        404
        ├── StepTimeoutError               STEP_TIMEOUT          408
        ├── WorkflowCancelledError         WORKFLOW_CANCELLED    409
        ├── InvalidStateError              INVALID_STATE         400
        ├── ValidationError                VALIDATION_ERROR      400
        ├── DataCorruptionError            DATA_CORRUPTION       500
        ├── MaxRetriesExceededError        MAX_RETRIES_EXCEEDED  500
        ├── NonRetriableError              STEP_FAILED           500  (raise in a handler)
        ├── ChildWorkflowError             CHILD_FAILED          500  a joined child failed
        └── StoreError                     (store-level; the engine handles these)
            ├── ConflictError              CONFLICT              409  stale revision / foreign owner
            ├── LeaseLostError             LEASE_LOST            409  heartbeat by a non-owner
            └── StoreUnavailableError      STORE_UNAVAILABLE     503  backend down / timed out

    BaseException
    └── ControlFlowSignal                  never an error; user ``except Exception`` cannot catch it
        ├── SuspendSignal                  ctx.wait / ctx.wait_for / ctx.sleep ended the step
        ├── RunCancelledSignal             the run was cancelled while the step executed
        ├── LeaseLostSignal                this worker no longer owns the run
        └── GotoSignal                     ctx.goto: the step ends, the run jumps

``ConflictError`` never reaches a caller of the public API: the engine retries
or reports a domain error instead.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

__all__ = [
    "ErrorCode",
    "WorkflowError",
    "WorkflowNotFoundError",
    "StepNotFoundError",
    "StepTimeoutError",
    "WorkflowCancelledError",
    "InvalidStateError",
    "ValidationError",
    "DataCorruptionError",
    "MaxRetriesExceededError",
    "NonRetriableError",
    "ChildWorkflowError",
    "StoreError",
    "ConflictError",
    "LeaseLostError",
    "StoreUnavailableError",
    "ControlFlowSignal",
    "SuspendSignal",
    "RunCancelledSignal",
    "LeaseLostSignal",
    "GotoSignal",
]


class ErrorCode(StrEnum):
    """Stable, machine-readable error codes (the original library's names)."""

    WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND"
    STEP_NOT_FOUND = "STEP_NOT_FOUND"
    STEP_TIMEOUT = "STEP_TIMEOUT"
    WORKFLOW_CANCELLED = "WORKFLOW_CANCELLED"
    INVALID_STATE = "INVALID_STATE"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    DATA_CORRUPTION = "DATA_CORRUPTION"
    MAX_RETRIES_EXCEEDED = "MAX_RETRIES_EXCEEDED"
    STEP_FAILED = "STEP_FAILED"
    DEAD_LETTERED = "DEAD_LETTERED"
    CONFLICT = "CONFLICT"
    LEASE_LOST = "LEASE_LOST"
    STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
    CHILD_FAILED = "CHILD_FAILED"


STATUS_BY_CODE: dict[ErrorCode, int] = {
    ErrorCode.WORKFLOW_NOT_FOUND: 404,
    ErrorCode.STEP_NOT_FOUND: 404,
    ErrorCode.STEP_TIMEOUT: 408,
    ErrorCode.WORKFLOW_CANCELLED: 409,
    ErrorCode.INVALID_STATE: 400,
    ErrorCode.VALIDATION_ERROR: 400,
    ErrorCode.DATA_CORRUPTION: 500,
    ErrorCode.MAX_RETRIES_EXCEEDED: 500,
    ErrorCode.STEP_FAILED: 500,
    ErrorCode.DEAD_LETTERED: 500,
    ErrorCode.CONFLICT: 409,
    ErrorCode.LEASE_LOST: 409,
    ErrorCode.STORE_UNAVAILABLE: 503,
    ErrorCode.CHILD_FAILED: 500,
}


class WorkflowError(Exception):
    """Base class of every error Streamline raises to callers.

    Attributes:
        code: The stable :class:`ErrorCode`.
        status: The HTTP status a web layer should answer with.
        run_id: The run concerned, when there is one.
        step_id: The step concerned, when there is one.
        details: Extra JSON-compatible facts about the failure.
    """

    code: ErrorCode = ErrorCode.STEP_FAILED

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None = None,
        step_id: str | None = None,
        details: dict[str, Any] | None = None,
        code: ErrorCode | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.run_id = run_id
        self.step_id = step_id
        self.details = details or {}

    @property
    def status(self) -> int:
        """HTTP status for this error's code."""
        return STATUS_BY_CODE.get(self.code, 500)

    def __str__(self) -> str:
        return self.message


class WorkflowNotFoundError(WorkflowError):
    """The run (or workflow definition) does not exist in this scope."""

    code = ErrorCode.WORKFLOW_NOT_FOUND


class StepNotFoundError(WorkflowError):
    """The step id is not part of the workflow definition."""

    code = ErrorCode.STEP_NOT_FOUND


class StepTimeoutError(WorkflowError):
    """A step exceeded its timeout; counts as a failed attempt."""

    code = ErrorCode.STEP_TIMEOUT


class WorkflowCancelledError(WorkflowError):
    """The run was cancelled."""

    code = ErrorCode.WORKFLOW_CANCELLED


class InvalidStateError(WorkflowError):
    """The operation does not apply to the run in its current state."""

    code = ErrorCode.INVALID_STATE


class ValidationError(WorkflowError):
    """A definition, an input or a payload is invalid; nothing was written."""

    code = ErrorCode.VALIDATION_ERROR


class DataCorruptionError(WorkflowError):
    """A document read from the store does not describe a valid run.

    Attributes:
        claimed: When raised by ``Store.claim``: the valid runs that the same
            call leased (the engine still executes them).
    """

    code = ErrorCode.DATA_CORRUPTION
    claimed: list[Any]

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.claimed = []


class MaxRetriesExceededError(WorkflowError):
    """A step failed on every attempt it was allowed."""

    code = ErrorCode.MAX_RETRIES_EXCEEDED


class NonRetriableError(WorkflowError):
    """Raise from a handler to fail the step (and the run) without retrying."""

    code = ErrorCode.STEP_FAILED


class ChildWorkflowError(WorkflowError):
    """A child run the step joined failed or was cancelled; the step fails with it.

    Retried by the step's own retries, each retry starting new children.

    Attributes:
        child_run_id: The child run whose end failed the join.
        child_error: That child's ``{"code", "message"}`` (``None`` if it recorded none).
    """

    code = ErrorCode.CHILD_FAILED

    def __init__(
        self,
        message: str,
        *,
        child_run_id: str,
        child_error: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        details = {"child_run_id": child_run_id, "child_error": child_error}
        super().__init__(message, details=details, **kwargs)
        self.child_run_id = child_run_id
        self.child_error = child_error


class StoreError(WorkflowError):
    """Base class of store-level errors; backends translate their own into these."""

    code = ErrorCode.STORE_UNAVAILABLE


class ConflictError(StoreError):
    """A compare-and-set write lost: stale revision or foreign lease owner."""

    code = ErrorCode.CONFLICT


class LeaseLostError(StoreError):
    """A heartbeat came from a worker that no longer holds the run's lease."""

    code = ErrorCode.LEASE_LOST


class StoreUnavailableError(StoreError):
    """The backend failed or could not be reached; the operation may be retried."""

    code = ErrorCode.STORE_UNAVAILABLE


class ControlFlowSignal(BaseException):
    """Root of the engine's control-flow signals.

    A ``BaseException`` so that ``except Exception`` in user handlers cannot
    swallow a suspension or a cancellation.
    """


class SuspendSignal(ControlFlowSignal):
    """Raised by ``ctx.wait``/``ctx.wait_for``/``ctx.sleep``: the step suspends here."""

    def __init__(self, wait: Any) -> None:
        super().__init__(getattr(wait, "kind", "wait"))
        self.wait = wait


class RunCancelledSignal(ControlFlowSignal):
    """The run was cancelled while its step executed."""


class LeaseLostSignal(ControlFlowSignal):
    """This worker lost the run's lease while its step executed."""


class GotoSignal(ControlFlowSignal):
    """Raised by ``ctx.goto(step_id)``: the step ends as ``skipped`` and the run jumps."""

    def __init__(self, target: str) -> None:
        super().__init__(f"goto:{target}")
        self.target = target
