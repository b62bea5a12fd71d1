"""Pure builders of the store patches the engine writes: decisions on a run value.

Contracts layer: imports the model only. Each builder takes the run as read
and returns the patch (or raises the domain error that refuses the
operation); the write loops in ``_runtime.commits`` call them again on a
fresh read after a conflict.
"""

from __future__ import annotations

import traceback
from datetime import datetime, timedelta
from typing import Any

from streamline_core.errors import ErrorCode, InvalidStateError, StepNotFoundError
from streamline_core.run import RunError, RunStatus, StepState, StepStatus, WaitState, WorkflowRun

__all__ = [
    "lease_value",
    "complete_step",
    "suspend_step",
    "retry_step",
    "fail_run",
    "release",
    "cancel_run",
    "set_paused",
    "rewind_run",
    "add_to_mailbox",
    "error_of",
    "format_traceback",
]


def lease_value(owner: str, now: datetime, lease_for: float) -> dict[str, Any]:
    """A lease document."""
    return {"owner": owner, "expires_at": now + timedelta(seconds=lease_for)}


def _context(patch: dict[str, Any], changes: dict[str, Any] | None) -> None:
    if changes:
        for key, value in changes.items():
            patch[f"context.{key}"] = value


def complete_step(
    run: WorkflowRun,
    idx: int,
    *,
    output: Any,
    now: datetime,
    status: StepStatus = StepStatus.DONE,
    started_at: datetime | None = None,
    attempts: int | None = None,
    context_changes: dict[str, Any] | None = None,
    lease: dict[str, Any] | None = None,
    keep_running: bool = False,
) -> dict[str, Any]:
    """Record step ``idx`` as finished and move the cursor: the one write per step.

    ``keep_running`` (the committing worker goes straight on to the next step)
    marks the next step ``running`` and refreshes ``lease``; otherwise the run
    is left for whoever claims it (``lease`` is written as given: ``None``
    releases it, a value hands it to a local worker).
    """
    prev = run.steps[idx]
    # The document of a finished StepState, built directly: this runs once
    # per step, and a model round trip would cost more than the rest.
    patch: dict[str, Any] = {
        f"steps.{idx}": {
            "step_id": prev.step_id,
            "status": status,
            "attempts": prev.attempts if attempts is None else attempts,
            "started_at": started_at or prev.started_at or now,
            "ended_at": now,
            "output": output,
            "error": None,
            "wait": None,
        },
        "updated_at": now,
    }
    _context(patch, context_changes)
    if idx + 1 < len(run.steps):
        nxt = idx + 1
        patch["current_step_id"] = run.steps[nxt].step_id
        if run.status != RunStatus.RUNNING:
            patch["status"] = RunStatus.RUNNING.value
        if run.wait is not None:
            patch["wait"] = None
        if keep_running:
            patch[f"steps.{nxt}.status"] = StepStatus.RUNNING.value
            patch[f"steps.{nxt}.started_at"] = now
            if lease is not None:
                patch["lease.expires_at"] = lease["expires_at"]
        else:
            patch["lease"] = lease
            patch["next_run_at"] = now
    else:
        patch.update(
            {
                "status": RunStatus.DONE.value,
                "output": output,
                "ended_at": now,
                "current_step_id": None,
                "wait": None,
                "lease": None,
                "next_run_at": None,
            }
        )
    return patch


def suspend_step(
    run: WorkflowRun,
    idx: int,
    wait: WaitState,
    *,
    now: datetime,
    started_at: datetime | None,
    attempts: int,
    context_changes: dict[str, Any] | None = None,
    error: RunError | None = None,
) -> dict[str, Any]:
    """Suspend the run at step ``idx``; it becomes claimable at ``wait.until`` (if any).

    ``error`` is the failure a retry wait follows (kept on the step).
    """
    prev = run.steps[idx]
    patch: dict[str, Any] = {
        f"steps.{idx}": StepState(
            step_id=prev.step_id,
            status=StepStatus.WAITING,
            attempts=attempts,
            started_at=started_at or prev.started_at or now,
            error=error,
            wait=wait,
            checkpoint=prev.checkpoint,  # kept across attempts
        ).model_dump(),
        "status": RunStatus.WAITING.value,
        "wait": wait.model_dump(),
        "lease": None,
        "next_run_at": wait.until,
        "updated_at": now,
    }
    _context(patch, context_changes)
    return patch


def retry_step(
    run: WorkflowRun,
    idx: int,
    *,
    error: RunError,
    until: datetime,
    now: datetime,
    started_at: datetime | None,
    attempts: int,
) -> dict[str, Any]:
    """Schedule the next attempt of step ``idx`` durably at ``until``."""
    wait = WaitState(kind="retry", reason=error.message, until=until)
    return suspend_step(
        run, idx, wait, now=now, started_at=started_at, attempts=attempts, error=error
    )


def fail_run(
    run: WorkflowRun,
    error: RunError,
    *,
    now: datetime,
    idx: int | None = None,
    started_at: datetime | None = None,
    attempts: int | None = None,
    step_error: RunError | None = None,
) -> dict[str, Any]:
    """End the run as ``failed`` (and its step ``idx``, when given)."""
    patch: dict[str, Any] = {
        "status": RunStatus.FAILED.value,
        "error": error.model_dump(),
        "ended_at": now,
        "updated_at": now,
        "lease": None,
        "next_run_at": None,
        "wait": None,
    }
    if idx is not None:
        prev = run.steps[idx]
        patch[f"steps.{idx}"] = StepState(
            step_id=prev.step_id,
            status=StepStatus.FAILED,
            attempts=prev.attempts if attempts is None else attempts,
            started_at=started_at or prev.started_at or now,
            ended_at=now,
            error=step_error or error,
            checkpoint=prev.checkpoint,
        ).model_dump()
    return patch


def release(run: WorkflowRun, now: datetime) -> dict[str, Any]:
    """Give the run back (lease cleared) so any worker may claim it when due."""
    patch: dict[str, Any] = {"lease": None, "updated_at": now}
    if run.status in (RunStatus.RUNNING, RunStatus.DRAFT):
        patch["next_run_at"] = now
        idx = run.step_index(run.current_step_id) if run.current_step_id else -1
        if idx >= 0 and run.steps[idx].status == StepStatus.RUNNING:
            patch[f"steps.{idx}.status"] = StepStatus.PENDING.value
    return patch


MAX_MESSAGE = 2_000
"""Characters of an exception's message kept on a step's error."""
MAX_TRACEBACK = 8_000
"""Characters of a traceback kept on a step's error: its start and the frames nearest the raise."""


def format_traceback(exc: BaseException) -> str | None:
    """``exc``'s traceback as text, bounded by :data:`MAX_TRACEBACK`; ``None`` if it has none."""
    if exc.__traceback__ is None:
        return None
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_TRACEBACK:
        head = MAX_TRACEBACK // 5
        tail = MAX_TRACEBACK - head
        cut = len(text) - MAX_TRACEBACK
        text = f"{text[:head]}\n... ({cut} characters left out) ...\n{text[-tail:]}"
    # Valid text only: a message may hold anything, and every store must keep it.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_of(exc: BaseException, code: ErrorCode, step_id: str | None) -> RunError:
    """A stored error record for ``exc``, with its traceback."""
    message = str(exc) or type(exc).__name__
    if len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]}... ({len(message) - MAX_MESSAGE} characters left out)"
    return RunError(
        code=code.value,
        message=message.encode("utf-8", "backslashreplace").decode("utf-8"),
        step_id=step_id,
        details={"type": type(exc).__name__},
        traceback=format_traceback(exc),
    )


def cancel_run(run: WorkflowRun, reason: str | None, now: datetime) -> dict[str, Any]:
    """End an active run as ``cancelled`` (step records stay as they are).

    Raises:
        InvalidStateError: the run already ended.
    """
    if run.is_terminal:
        raise InvalidStateError(f"run {run.id!r} is already {run.status.value}", run_id=run.id)
    # The run no longer waits; the step's own record keeps what it waited for.
    return {
        "status": RunStatus.CANCELLED.value,
        "wait": None,
        "error": RunError(
            code=ErrorCode.WORKFLOW_CANCELLED.value,
            message=reason or "cancelled",
            step_id=run.current_step_id,
        ).model_dump(),
        "ended_at": now,
        "updated_at": now,
        "next_run_at": None,
    }


def set_paused(
    run: WorkflowRun, paused: bool, now: datetime, lease: dict[str, Any] | None
) -> dict[str, Any]:
    """Pause or unpause an active run; an unpaused due run may be handed ``lease`` at once.

    Raises:
        InvalidStateError: the run already ended.
    """
    if run.is_terminal:
        raise InvalidStateError(
            f"run {run.id!r} is {run.status.value}; only active runs can be "
            f"{'paused' if paused else 'unpaused'}",
            run_id=run.id,
        )
    patch: dict[str, Any] = {"paused": paused, "updated_at": now}
    if not paused and run.lease is None:
        due = run.next_run_at is not None and run.next_run_at <= now
        if lease is not None and due:
            patch["lease"] = lease
    return patch


def rewind_run(
    run: WorkflowRun, step_id: str, now: datetime, lease: dict[str, Any] | None
) -> dict[str, Any]:
    """Move the cursor back to ``step_id``, reset it and every later step, run again.

    Raises:
        StepNotFoundError: the run has no such step.
    """
    idx = run.step_index(step_id)
    if idx < 0:
        raise StepNotFoundError(
            f"run {run.id!r} has no step {step_id!r}", run_id=run.id, step_id=step_id
        )
    patch: dict[str, Any] = {
        "status": RunStatus.RUNNING.value,
        "current_step_id": step_id,
        "output": None,
        "error": None,
        "ended_at": None,
        "wait": None,
        "lease": lease,
        "next_run_at": now,
        "updated_at": now,
        "epoch": run.epoch + 1,
    }
    if run.gotos:
        patch["gotos"] = 0
    if run.compensation is not None:
        patch["compensation"] = None
    for j in range(idx, len(run.steps)):
        patch[f"steps.{j}"] = StepState(step_id=run.steps[j].step_id).model_dump()
    return patch


def add_to_mailbox(run: WorkflowRun, name: str, data: Any, now: datetime) -> dict[str, Any]:
    """Keep a targeted event on a run that does not wait for it yet."""
    mailbox = [m.model_dump() for m in run.mailbox]
    mailbox.append({"name": name, "data": data, "at": now})
    return {"mailbox": mailbox, "updated_at": now}
