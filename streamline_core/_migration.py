"""Pure decisions of moving a run onto another version: the step map, the patch, a fork's steps.

Contracts layer: imports the model and errors only. A *counterpart* of an old
step is the new step it becomes: ``step_map[old]`` when the map names it,
else the step of the same id, when the new definition has one. An explicit
entry wins over a same-named step: with ``{"charge": "bill"}`` the old
``charge`` becomes ``bill`` even if the old definition had a ``bill`` too
(that old ``bill`` then has no counterpart).

:func:`migration_patch` builds the one compare-and-set of
``migrate_run``; :func:`fork_steps` the step records a fork starts with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from streamline_core.errors import InvalidStateError, ValidationError
from streamline_core.run import RunStatus, StepState, StepStatus, WorkflowRun

__all__ = ["check_step_map", "counterparts", "live_lease", "migration_patch", "fork_steps"]

_KEPT = (StepStatus.DONE, StepStatus.SKIPPED)
"""Step records whose output is carried (a skipped step's output is part of ``ctx.outputs``)."""


def check_step_map(
    step_map: object, old_ids: Sequence[str], new_ids: Sequence[str], *, version: str
) -> dict[str, str]:
    """``step_map`` checked: a dict of old step id -> new step id, each named by its definition.

    Raises:
        ValidationError: not a dict of strings, a key that is no old step, a
            value that is no step of ``version``, or two keys naming one new step.
    """
    if step_map is None:
        return {}
    if not isinstance(step_map, Mapping):
        raise ValidationError(
            f"step_map must be a dict of old step id -> new step id, got {type(step_map).__name__}"
        )
    out: dict[str, str] = {}
    for old, new in step_map.items():
        if not isinstance(old, str) or not isinstance(new, str):
            raise ValidationError(
                f"step_map must map step ids (str) to step ids (str), got {old!r:.60}: {new!r:.60}"
            )
        if old not in old_ids:
            raise ValidationError(
                f"step_map names {old!r}, which is not a step of the run's version "
                f"(steps: {list(old_ids)})"
            )
        if new not in new_ids:
            raise ValidationError(
                f"step_map maps {old!r} to {new!r}, which is not a step of version {version!r} "
                f"(steps: {list(new_ids)})"
            )
        out[old] = new
    targets = list(out.values())
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise ValidationError(f"step_map maps several old steps onto {twice[0]!r}")
    return out


def counterparts(
    old_ids: Sequence[str], new_ids: Sequence[str], step_map: Mapping[str, str]
) -> dict[str, str]:
    """Old step id -> the new step it becomes (old steps without a counterpart are left out)."""
    mapped = set(step_map.values())
    out: dict[str, str] = {}
    for old in old_ids:
        if old in step_map:
            out[old] = step_map[old]
        elif old in new_ids and old not in mapped:
            out[old] = old
    return out


def live_lease(run: WorkflowRun, now: datetime) -> bool:
    """Whether a worker holds ``run`` now (a lease that has not expired by ``now``)."""
    return run.lease is not None and run.lease.expires_at > now


def _renamed(state: StepState, step_id: str) -> dict[str, Any]:
    return state.model_copy(update={"step_id": step_id}).model_dump()


def migration_patch(
    run: WorkflowRun,
    *,
    version: str,
    new_ids: Sequence[str],
    step_map: Mapping[str, str],
    now: datetime,
    lease: dict[str, Any] | None,
) -> dict[str, Any]:
    """The one write that moves ``run`` onto ``version`` (whose steps are ``new_ids``).

    Steps before the new cursor keep the record of their done (or skipped)
    counterpart, else are recorded ``skipped`` (output ``None``); the cursor
    step keeps its record (a waiting step stays waiting on the same wait; a
    step left ``running`` by a dead worker becomes ``pending``); steps after
    it are ``pending``. The lease is cleared (or handed to ``lease``) and the
    epoch bumped, so a stale worker's late commit is fenced out.

    Raises:
        InvalidStateError: the run ended, is under a live lease, compensates,
            or is on ``version`` already.
        ValidationError: the cursor has no counterpart in ``version``.
    """
    if run.is_terminal:
        raise InvalidStateError(
            f"run {run.id!r} is {run.status.value}; only an active run can be migrated",
            run_id=run.id,
        )
    if live_lease(run, now):
        assert run.lease is not None
        raise InvalidStateError(
            f"run {run.id!r} is being executed by worker {run.lease.owner!r} (lease until "
            f"{run.lease.expires_at.isoformat()}); pause it, let the step commit, then migrate",
            run_id=run.id,
        )
    if run.compensation is not None:
        raise InvalidStateError(
            f"run {run.id!r} is compensating a failure; it cannot be migrated", run_id=run.id
        )
    if run.workflow_version == version:
        raise InvalidStateError(f"run {run.id!r} is on version {version!r} already", run_id=run.id)
    old_ids = [s.step_id for s in run.steps]
    to_new = counterparts(old_ids, new_ids, step_map)
    cursor = None if run.current_step_id is None else to_new.get(run.current_step_id)
    if cursor is None:
        raise ValidationError(
            f"run {run.id!r} is at step {run.current_step_id!r}, which has no counterpart in "
            f"version {version!r} (steps: {list(new_ids)}); name one with step_map",
            run_id=run.id,
            step_id=run.current_step_id,
        )
    from_old = {new: run.steps[old_ids.index(old)] for old, new in to_new.items()}
    at = list(new_ids).index(cursor)
    steps: list[dict[str, Any]] = []
    for i, step_id in enumerate(new_ids):
        prev = from_old.get(step_id)
        if i < at:
            if prev is not None and prev.status in _KEPT:
                steps.append(_renamed(prev, step_id))
            else:
                steps.append(
                    StepState(step_id=step_id, status=StepStatus.SKIPPED, ended_at=now).model_dump()
                )
        elif i == at:
            assert prev is not None
            if prev.status == StepStatus.RUNNING:
                prev = prev.model_copy(update={"status": StepStatus.PENDING})
            steps.append(_renamed(prev, step_id))
        else:
            steps.append(StepState(step_id=step_id).model_dump())
    patch: dict[str, Any] = {
        "workflow_version": version,
        "steps": steps,
        "current_step_id": cursor,
        "lease": lease,
        "epoch": run.epoch + 1,
        "updated_at": now,
    }
    if run.status != RunStatus.WAITING and run.next_run_at is None:
        patch["next_run_at"] = now
    return patch


def fork_steps(
    source: WorkflowRun,
    *,
    new_ids: Sequence[str],
    from_step: str,
    step_map: Mapping[str, str],
    now: datetime,
) -> list[StepState]:
    """The step records a fork of ``source`` starts with, at ``from_step``.

    Steps before ``from_step`` take the record of their counterpart in
    ``source`` when it is done or skipped, else are recorded ``skipped``
    (they are behind the cursor and never run); ``from_step`` and the steps
    after it are ``pending``.
    """
    old_ids = [s.step_id for s in source.steps]
    to_new = counterparts(old_ids, new_ids, step_map)
    from_old = {new: source.steps[old_ids.index(old)] for old, new in to_new.items()}
    at = list(new_ids).index(from_step)
    out: list[StepState] = []
    for i, step_id in enumerate(new_ids):
        prev = from_old.get(step_id)
        if i >= at:
            out.append(StepState(step_id=step_id))
        elif prev is not None and prev.status in _KEPT:
            out.append(
                prev.model_copy(
                    update={"step_id": step_id, "compensation": None, "checkpoint": None}
                )
            )
        else:
            out.append(StepState(step_id=step_id, status=StepStatus.SKIPPED, ended_at=now))
    return out
