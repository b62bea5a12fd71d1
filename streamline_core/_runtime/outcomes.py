"""``Outcomes``: a step's outcome — done, suspended, retried or failed — as one commit.

Parts layer: imports the runtime and the commit loop. Each method builds the
patch as a function of the current run (``_patches``), commits it fenced by
this worker's lease, and emits the events that follow from what was stored.
The boolean they return tells the executor whether to go on to the next step.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import streamline_core._flow_patches as F
import streamline_core._patches as P
from streamline_core._runtime.commits import Patch, Refused, commit
from streamline_core._runtime.inflight import RunState
from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import (
    ErrorCode,
    NonRetriableError,
    StepNotFoundError,
    StepTimeoutError,
    ValidationError,
    WorkflowError,
)
from streamline_core.run import RunError, RunStatus, StepStatus, WaitState, WorkflowRun

__all__ = ["Outcomes"]

run_log = logging.getLogger("streamline.run")


def goes_on(run: WorkflowRun) -> bool:
    """Whether the committing worker continues with the run's next step."""
    return run.status == RunStatus.RUNNING and run.lease is not None


class Outcomes:
    """Commits step outcomes for one runtime."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def advance(
        self,
        r: WorkflowRun,
        idx: int,
        *,
        output: Any,
        status: StepStatus = StepStatus.DONE,
        started_at: datetime | None = None,
        attempts: int | None = None,
        changes: dict[str, Any] | None = None,
    ) -> Patch:
        """The patch that finishes step ``idx`` and moves on (keeping the lease unless stopping)."""
        rt = self._rt
        now = rt.clock.now()
        keep = not (r.paused or rt.stopping)
        return P.complete_step(
            r,
            idx,
            output=output,
            now=now,
            status=status,
            started_at=started_at,
            attempts=attempts,
            context_changes=changes,
            lease=rt.lease_value(now) if keep else None,
            keep_running=keep,
        )

    async def suspend(
        self,
        state: RunState,
        idx: int,
        wait: WaitState,
        changes: dict[str, Any],
        started_at: datetime,
        attempt: int,
    ) -> bool:
        """The step waits: commit the wait (or consume a mailbox event that already came)."""
        rt = self._rt
        step_id = state.run.steps[idx].step_id
        consumed: list[Any] = []

        def build(r: WorkflowRun) -> Patch:
            consumed.clear()
            if wait.kind == "event":
                for i, ev in enumerate(r.mailbox):
                    if ev.name == wait.event:
                        consumed.append(ev.data)
                        patch = self.advance(
                            r,
                            idx,
                            output=ev.data,
                            started_at=started_at,
                            attempts=attempt,
                            changes=changes,
                        )
                        patch["mailbox"] = [
                            m.model_dump() for j, m in enumerate(r.mailbox) if j != i
                        ]
                        return patch
            return P.suspend_step(
                r,
                idx,
                wait,
                now=rt.clock.now(),
                started_at=started_at,
                attempts=attempt,
                context_changes=changes,
            )

        try:
            run = await commit(rt, state, build, step_id)
        except Refused as refused:
            return await self.refused(state, idx, refused, started_at, attempt)
        if consumed:
            await rt.events.emit("step:completed", run=run, step_id=step_id, data=consumed[0])
            await rt.events.ended(run)
            return goes_on(run)
        data = wait.model_dump(mode="json")
        await rt.events.emit("step:waiting", run=run, step_id=step_id, data=data)
        await rt.events.emit("workflow:waiting", run=run, step_id=step_id, data=data)
        rt.note_due(run)
        return False

    async def failed(
        self,
        state: RunState,
        idx: int,
        exc: BaseException,
        started_at: datetime,
        attempt: int,
    ) -> bool:
        """The attempt failed: schedule a retry when the policy gives a delay, else fail the run."""
        rt = self._rt
        run = state.run
        spec = state.spec.steps[idx]
        step = run.steps[idx]
        if rt.plugins.middleware:
            await rt.events.observe(rt.plugins.step_error(run, step, exc), run.id)
        if isinstance(exc, StepTimeoutError):
            code = ErrorCode.STEP_TIMEOUT
        elif isinstance(exc, WorkflowError) and not isinstance(exc, NonRetriableError):
            code = exc.code
        else:
            code = ErrorCode.STEP_FAILED
        final = isinstance(exc, (NonRetriableError, ValidationError, StepNotFoundError)) or (
            bool(spec.non_retryable) and isinstance(exc, spec.non_retryable)
        )
        delay: float | None = None
        give_up_code = ErrorCode.STEP_FAILED
        if not final:
            if attempt < spec.retries:
                delay = rt.plugins.retry_delay(run, step, spec, attempt, exc)
            else:
                give_up_code = ErrorCode.MAX_RETRIES_EXCEEDED
        error = P.error_of(exc, code, spec.step_id)
        run_log.log(
            logging.WARNING if delay is not None else logging.ERROR,
            "run %s step %r attempt %d failed (%s): %s",
            run.id,
            spec.step_id,
            attempt,
            "will retry" if delay is not None else "giving up",
            error.message,
            exc_info=exc,
            extra={"run_id": run.id, "step_id": spec.step_id, "workflow_id": run.workflow_id},
        )
        await rt.events.emit(
            "step:failed",
            run=run,
            step_id=spec.step_id,
            error=exc,
            data={"attempt": attempt, "will_retry": delay is not None},
        )
        if delay is not None:
            rt.counters.retries += 1
            until = rt.clock.now() + timedelta(seconds=delay)
            run = await commit(
                rt,
                state,
                lambda r: P.retry_step(
                    r,
                    idx,
                    error=error,
                    until=until,
                    now=rt.clock.now(),
                    started_at=started_at,
                    attempts=attempt,
                ),
                spec.step_id,
            )
            data = {"attempt": attempt, "delay": delay, "next_attempt_at": until.isoformat()}
            await rt.events.emit(
                "step:retry-scheduled", run=run, step_id=spec.step_id, error=exc, data=data
            )
            await rt.events.emit(
                "workflow:retry", run=run, step_id=spec.step_id, error=exc, data=data
            )
            rt.note_due(run)
            return False
        if give_up_code == ErrorCode.MAX_RETRIES_EXCEEDED:
            message = f"step {spec.step_id!r} failed after {attempt} attempt(s): {error.message}"
        else:
            message = error.message
        run_error = RunError(
            code=give_up_code.value,
            message=message,
            step_id=spec.step_id,
            details={**error.details, "step_error_code": code.value, "attempts": attempt},
        )
        saga = [s.compensate is not None for s in state.spec.steps]
        try:
            run = await commit(
                rt,
                state,
                lambda r: F.fail_or_compensate(
                    r,
                    run_error,
                    has_compensate=saga,
                    now=rt.clock.now(),
                    lease=rt.lease_value(rt.clock.now()),
                    idx=idx,
                    started_at=started_at,
                    attempts=attempt,
                    step_error=error,
                ),
                spec.step_id,
            )
        except Refused:
            # Even the failure record was refused (a message the store cannot
            # hold): fail the run with the bare code rather than leave it leased.
            bare = RunError(code=give_up_code.value, message=message[:200], step_id=spec.step_id)
            run = await commit(
                rt,
                state,
                lambda r: F.fail_or_compensate(
                    r,
                    bare,
                    has_compensate=saga,
                    now=rt.clock.now(),
                    lease=rt.lease_value(rt.clock.now()),
                ),
                spec.step_id,
            )
        await rt.events.ended(run, error=exc)
        return goes_on(run)  # a saga to run (the run stays leased, compensating)

    async def refused(
        self, state: RunState, idx: int, refused: Refused, started_at: datetime, attempt: int
    ) -> bool:
        """The store refused the step's outcome (too big, too deep, ...): the step fails once."""
        step_id = state.spec.steps[idx].step_id
        error = NonRetriableError(
            f"step {step_id!r}: the store refused its result: {refused.error}",
            run_id=state.run.id,
            step_id=step_id,
        )
        return await self.failed(state, idx, error, started_at, attempt)
