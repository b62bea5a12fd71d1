"""Pure patch builders for the in-step flow features: checkpoints, ``goto`` and the saga.

Contracts layer: imports the model and :mod:`_patches`. Like ``_patches``,
each builder decides on the run as read and returns the patch; the runtime
parts (``_runtime.checkpoints``, ``_runtime.jumps``, ``_runtime.compensation``)
commit them fenced by the worker's lease.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import streamline_core._patches as P
from streamline_core.errors import ErrorCode
from streamline_core.run import RunStatus, StepState, StepStatus, WorkflowRun

__all__ = [
    "checkpoint_patch",
    "goto_step",
    "compensable_steps",
    "start_compensation",
    "fail_or_compensate",
    "cancel_and_compensate",
    "step_compensated",
    "end_compensation",
    "abandon_compensation",
]


def checkpoint_patch(
    idx: int, changes: Mapping[str, Any], *, now: datetime, lease_expires: datetime | None
) -> dict[str, Any]:
    """Write ``changes`` (paths relative to ``steps.<idx>.checkpoint``; ``""`` is the whole)."""
    base = f"steps.{idx}.checkpoint"
    patch: dict[str, Any] = {
        (f"{base}.{path}" if path else base): value for path, value in changes.items()
    }
    patch["updated_at"] = now
    if lease_expires is not None:
        patch["lease.expires_at"] = lease_expires
    return patch


def goto_step(
    run: WorkflowRun,
    idx: int,
    target: int,
    *,
    now: datetime,
    started_at: datetime,
    attempts: int,
    context_changes: dict[str, Any] | None,
    lease: dict[str, Any] | None,
    keep_running: bool,
) -> dict[str, Any]:
    """Step ``idx`` ends ``skipped`` and the cursor jumps to ``target``.

    Back (``target <= idx``): the target and every later step are reset to
    ``pending`` (outputs, attempts and checkpoints cleared; the current step
    is among them). Forward: the steps in between are recorded ``skipped``.
    The context changes of the step are kept; ``gotos`` goes up by one.
    """
    patch: dict[str, Any] = {
        "current_step_id": run.steps[target].step_id,
        "gotos": run.gotos + 1,
        "updated_at": now,
    }
    if context_changes:
        for key, value in context_changes.items():
            patch[f"context.{key}"] = value
    if target <= idx:
        for j in range(target, len(run.steps)):
            patch[f"steps.{j}"] = StepState(step_id=run.steps[j].step_id).model_dump()
    else:
        patch[f"steps.{idx}"] = StepState(
            step_id=run.steps[idx].step_id,
            status=StepStatus.SKIPPED,
            attempts=attempts,
            started_at=started_at,
            ended_at=now,
        ).model_dump()
        for j in range(idx + 1, target + 1):
            patch[f"steps.{j}"] = StepState(step_id=run.steps[j].step_id).model_dump()
        for j in range(idx + 1, target):
            patch[f"steps.{j}"]["status"] = StepStatus.SKIPPED
            patch[f"steps.{j}"]["ended_at"] = now
    if keep_running:
        patch[f"steps.{target}"]["status"] = StepStatus.RUNNING
        patch[f"steps.{target}"]["started_at"] = now
        if lease is not None:
            patch["lease.expires_at"] = lease["expires_at"]
    else:
        patch["lease"] = lease
        patch["next_run_at"] = now
    return patch


def compensable_steps(run: WorkflowRun, has_compensate: Sequence[bool]) -> list[int]:
    """Indices of the ``done`` steps with a ``compensate`` handler not yet compensated."""
    return [
        j
        for j, step in enumerate(run.steps)
        if j < len(has_compensate)
        and has_compensate[j]
        and step.status == StepStatus.DONE
        and step.compensation != "done"
    ]


def start_compensation(
    patch: dict[str, Any], steps: Sequence[int], *, now: datetime, lease: dict[str, Any] | None
) -> dict[str, Any]:
    """Turn a patch that ends the run (failed or cancelled) into one that starts its saga.

    The run stays ``running`` (claimable at once, leased to ``lease`` when
    given) with ``compensation = "pending"`` and each of ``steps`` marked
    ``pending``; its error is kept: the saga's end writes the final status.
    Its takeovers count from zero again: the saga has ``max_recoveries`` of its own.
    """
    patch.update(
        {
            "status": RunStatus.RUNNING.value,
            "compensation": "pending",
            "recoveries": 0,
            "ended_at": None,
            "lease": lease,
            "next_run_at": now,
            "wait": None,
        }
    )
    for j in steps:
        patch[f"steps.{j}.compensation"] = "pending"
    return patch


def fail_or_compensate(
    run: WorkflowRun,
    error: Any,
    *,
    has_compensate: Sequence[bool],
    now: datetime,
    lease: dict[str, Any] | None,
    **fail: Any,
) -> dict[str, Any]:
    """``fail_run``, or the start of the saga when done steps have ``compensate`` handlers.

    ``fail`` holds ``fail_run``'s step arguments (``idx``, ``started_at``, ...).
    """
    patch = P.fail_run(run, error, now=now, **fail)
    if run.compensation is not None:
        return patch  # a saga already ran (or runs): never a second one
    steps = compensable_steps(run, has_compensate)
    if not steps:
        return patch
    return start_compensation(patch, steps, now=now, lease=lease)


def cancel_and_compensate(
    run: WorkflowRun,
    reason: str | None,
    *,
    has_compensate: Sequence[bool],
    now: datetime,
    lease: dict[str, Any] | None,
) -> dict[str, Any]:
    """``cancel_run``, starting the saga first when there is anything to compensate.

    The run's epoch moves on (as a rewind does), so a step still executing
    for it somewhere can no longer commit.
    """
    patch = P.cancel_run(run, reason, now)
    steps = [] if run.compensation is not None else compensable_steps(run, has_compensate)
    if not steps:
        return patch
    patch["epoch"] = run.epoch + 1
    idx = run.step_index(run.current_step_id) if run.current_step_id else -1
    if idx >= 0 and run.steps[idx].status in (StepStatus.RUNNING, StepStatus.WAITING):
        patch[f"steps.{idx}.status"] = StepStatus.PENDING.value
    return start_compensation(patch, steps, now=now, lease=lease)


def step_compensated(
    idx: int,
    ok: bool,
    *,
    now: datetime,
    lease_expires: datetime | None,
    context_changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record the end of step ``idx``'s compensation (``done`` or ``failed``)."""
    patch: dict[str, Any] = {
        f"steps.{idx}.compensation": "done" if ok else "failed",
        "updated_at": now,
    }
    if context_changes:
        for key, value in context_changes.items():
            patch[f"context.{key}"] = value
    if lease_expires is not None:
        patch["lease.expires_at"] = lease_expires
    return patch


def end_compensation(run: WorkflowRun, now: datetime) -> dict[str, Any]:
    """End a compensated run: ``failed`` (``cancelled`` for a cancel) with its original error."""
    cancelled = run.error is not None and run.error.code == ErrorCode.WORKFLOW_CANCELLED
    failed = any(s.compensation == "failed" for s in run.steps)
    return {
        "status": (RunStatus.CANCELLED if cancelled else RunStatus.FAILED).value,
        "compensation": "failed" if failed else "done",
        "ended_at": now,
        "updated_at": now,
        "lease": None,
        "next_run_at": None,
        "wait": None,
    }


def abandon_compensation(run: WorkflowRun, now: datetime) -> dict[str, Any]:
    """End a saga whose workers keep dying: its pending compensations are recorded failed.

    The run ends as :func:`end_compensation` ends it, with ``compensation = "failed"``.
    """
    patch: dict[str, Any] = {
        f"steps.{j}.compensation": "failed"
        for j, step in enumerate(run.steps)
        if step.compensation == "pending"
    }
    patch.update(end_compensation(run, now))
    patch["compensation"] = "failed"
    return patch
