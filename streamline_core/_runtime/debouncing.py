"""Debounced creation: a start folds into its bucket's pending run, or creates it.

Parts layer: imports the runtime only. No Store operation of its own: it is
built on two the contract already makes strict across processes.

* The pending run of a bucket holds the idempotency key ``"debounce:<key>"``,
  so of racing creates exactly one inserts and the others get that run back.
* Folding a start into the pending run is one compare-and-set pinned to the
  revision read, and so is every claim: either the fold lands first (the run
  is pushed back and no longer due) or the claim does (the fold fails, the
  run has begun, and the start goes on to make a new run).

A run that has begun gives its key up (one more compare-and-set, the only
extra write, paid by the first start after the begin) so the next create can
take the key; the worker executing it meets one conflict at its next commit
and rebuilds, as it does after any client write.
"""

from __future__ import annotations

from datetime import timedelta

from streamline_core._runtime.runtime import Runtime
from streamline_core.debounce import Debounce
from streamline_core.errors import ConflictError, InvalidStateError, WorkflowNotFoundError
from streamline_core.run import RunStatus, StepStatus, WorkflowRun

__all__ = ["create_debounced", "not_begun"]

_ATTEMPTS = 50


def not_begun(run: WorkflowRun) -> bool:
    """No step of ``run`` was ever claimed: queued, unleased, every step untouched."""
    return (
        run.status == RunStatus.RUNNING
        and run.lease is None
        and run.recoveries == 0
        and all(s.status == StepStatus.PENDING and s.attempts == 0 for s in run.steps)
    )


_LIMIT_FIELDS = ("concurrency_key", "concurrency_limit", "rate_key", "rate_limit", "rate_period")


async def create_debounced(
    rt: Runtime, run: WorkflowRun, debounce: Debounce
) -> tuple[WorkflowRun, bool]:
    """Store ``run`` (unleased, due after the quiet period, keyed by its bucket) or fold it.

    Returns ``(run, True)`` when ``run`` was created, ``(pending, False)`` when
    the start was folded into the bucket's pending run: that run now has
    ``run``'s input and context, and starts at ``run.next_run_at`` or
    ``max_wait`` after it was created, whichever is earlier.

    Raises:
        InvalidStateError: the bucket kept changing for every attempt.
    """
    assert run.next_run_at is not None and run.idempotency_key is not None
    for _ in range(_ATTEMPTS):
        stored, created = await rt.io.create(run)
        if created:
            return stored, True
        try:
            if not_begun(stored):
                due = run.next_run_at
                if debounce.max_wait is not None:
                    due = min(due, stored.created_at + timedelta(seconds=debounce.max_wait))
                patch = {
                    "input": run.input,
                    "context": run.context,
                    "next_run_at": due,
                    "updated_at": rt.clock.now(),
                }
                # Flow-control keys come from the input: the new input's keys win
                # (the pending run holds no slot yet, so moving it is safe).
                for field in _LIMIT_FIELDS:
                    if getattr(run, field) != getattr(stored, field):
                        patch[field] = getattr(run, field)
                return await rt.io.transition(stored.id, stored.revision, patch), False
            # Begun: it gives the key up, and the next create makes the new pending run.
            await rt.io.transition(stored.id, stored.revision, {"idempotency_key": None})
        except (ConflictError, WorkflowNotFoundError):
            continue  # claimed, folded into, released or deleted meanwhile: look again
    raise InvalidStateError(
        f"debounced start of workflow {run.workflow_id!r} kept racing other starts; try again"
    )
