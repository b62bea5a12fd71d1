"""Drives one leased run through its steps: execute, commit once per step, retry, suspend.

Every commit is a compare-and-set ``transition`` fenced by this worker's lease,
built as a function of the current document: when a client write (pause,
cancel, a mailbox event) bumped the revision meanwhile, the executor re-reads
and recomputes the patch if the run is still its own, and drops the result
otherwise. A worker that lost its lease can never write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from streamline_core import _patches as P
from streamline_core._json import Unstorable, to_json_value
from streamline_core.clock import SystemClock
from streamline_core.context import StepContext
from streamline_core.errors import (
    ConflictError,
    ErrorCode,
    NonRetriableError,
    StepTimeoutError,
    StoreUnavailableError,
    SuspendSignal,
    ValidationError,
    WorkflowError,
    WorkflowNotFoundError,
)
from streamline_core.run import RunError, RunStatus, StepStatus, WaitState, WorkflowRun
from streamline_core.waits import WaitResolution

if TYPE_CHECKING:
    from streamline_core.definition import StepSpec
    from streamline_core.engine import Engine
    from streamline_core.workflow import Workflow

__all__ = ["RunState", "Executor"]

log = logging.getLogger("streamline.executor")

Patch = dict[str, Any]


@dataclass(eq=False)
class RunState:
    """An in-flight run in this process."""

    run: WorkflowRun
    workflow: Workflow
    lease_expires: datetime
    task: asyncio.Task[None] | None = None
    ctx: StepContext | None = None
    in_handler: bool = False
    cancel_reason: str | None = None
    heartbeat_failures: int = 0

    done: asyncio.Event = field(default_factory=asyncio.Event)

    def interrupt(self, reason: str) -> None:
        """Stop the executing handler (cancel, lease lost, timeout, rewind)."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        if self.ctx is not None and reason != "timeout":
            self.ctx.signal.set()
        if self.in_handler and self.task is not None and not self.task.done():
            self.task.cancel()


class _Dropped(Exception):
    """The run is no longer ours to write (terminal, lease gone, rewound)."""


class Executor:
    """Runs steps for an engine. One instance per engine; state lives in :class:`RunState`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- commits -------------------------------------------------------------------

    async def commit(
        self,
        state: RunState,
        build: Callable[[WorkflowRun], Patch | None],
        step_id: str | None = None,
    ) -> WorkflowRun:
        """Write ``build(current run)`` with CAS + fencing; re-read and rebuild on conflict.

        With ``step_id``, the write is the outcome of that step: it is dropped
        if the run's cursor has moved away from it meanwhile (a rewind).
        """
        eng = self.engine
        run = state.run
        backoff = 0.05
        while True:
            if state.cancel_reason is not None:
                raise _Dropped()  # cancelled, rewound or lost meanwhile: not ours to write
            if step_id is not None and run.current_step_id != step_id:
                raise _Dropped()
            patch = build(run)
            if patch is None:
                raise _Dropped()
            try:
                new = await eng._io.transition(run.id, run.revision, patch, owner=eng.worker_id)
            except ConflictError:
                current = await eng._io.get(run.id)
                if (
                    current is None
                    or current.is_terminal
                    or current.lease is None
                    or current.lease.owner != eng.worker_id
                ):
                    if current is not None:
                        state.run = current
                    raise _Dropped() from None
                run = current
                continue
            except WorkflowNotFoundError:
                raise _Dropped() from None
            except StoreUnavailableError as exc:
                eng.counters.store_errors += 1
                if eng.clock.now() >= state.lease_expires:
                    raise _Dropped() from exc
                await eng._emit("scheduler:error", run_id=run.id, error=exc)
                await eng.clock.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            state.run = new
            eng.counters.commits += 1
            if new.lease is not None and new.lease.owner == eng.worker_id:
                state.lease_expires = new.lease.expires_at
            return new

    # --- the drive loop ------------------------------------------------------------

    async def drive(self, state: RunState) -> None:
        """Execute ``state.run`` until it ends, suspends, is released or is lost."""
        eng = self.engine
        try:
            while True:
                run = state.run
                if run.is_terminal or run.lease is None or run.lease.owner != eng.worker_id:
                    return
                if run.paused or eng.stopping:
                    await self.commit(state, lambda r: P.release(r, eng.clock.now()))
                    return
                idx = run.step_index(run.current_step_id) if run.current_step_id else -1
                if idx < 0 or idx >= len(state.workflow.steps):
                    await eng._emit(
                        "engine:error",
                        run_id=run.id,
                        error=WorkflowError(
                            f"run {run.id!r} is at step {run.current_step_id!r}, which workflow "
                            f"{run.workflow_id!r} v{run.workflow_version} does not define",
                            run_id=run.id,
                        ),
                    )
                    return
                if (
                    run.status == RunStatus.WAITING
                    and run.wait is not None
                    and run.wait.kind != "retry"  # a due retry simply runs the step again
                ):
                    if not await self._finish_wait(state, idx):
                        return
                    continue
                if not await self._run_step(state, idx):
                    return
        except _Dropped:
            return
        except asyncio.CancelledError:
            if state.cancel_reason is None:
                raise
        except Exception as exc:  # a bug or a store failure: report, let the lease expire
            log.exception("run %s: executor failed", state.run.id)
            await eng._emit("engine:error", run_id=state.run.id, error=exc)
        finally:
            state.done.set()
            eng._drive_finished(state)

    async def _finish_wait(self, state: RunState, idx: int) -> bool:
        """A claimed waiting run is due: complete its timer, or time its wait out."""
        eng = self.engine
        wait = state.run.wait
        assert wait is not None
        now = eng.clock.now()
        if wait.until is None or wait.until > now:
            await self.commit(state, lambda r: P.release(r, eng.clock.now()))
            return False
        if wait.kind == "timer":
            output: Any = None
        else:
            output = WaitResolution(
                wait_kind=wait.kind, event=wait.event, reason=wait.reason
            ).to_output()
        step_id = state.run.steps[idx].step_id

        def build(r: WorkflowRun) -> Patch | None:
            if r.status != RunStatus.WAITING or r.current_step_id != step_id:
                return None
            return self._advance(r, idx, output=output)

        run = await self.commit(state, build)
        await eng._emit("step:completed", run=run, step_id=step_id, data=output)
        await eng._emit_if_ended(run)
        return run.status == RunStatus.RUNNING and run.lease is not None

    def _advance(
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
        eng = self.engine
        now = eng.clock.now()
        keep = not (r.paused or eng.stopping)
        lease = P.lease_value(eng.worker_id, now, eng.lease) if keep else None
        return P.complete_step(
            r,
            idx,
            output=output,
            now=now,
            status=status,
            started_at=started_at,
            attempts=attempts,
            context_changes=changes,
            lease=lease,
            keep_running=keep,
        )

    async def _run_step(self, state: RunState, idx: int) -> bool:
        """Execute step ``idx`` once and commit its outcome. True to go on with the next step."""
        eng = self.engine
        run = state.run
        spec = state.workflow.steps[idx]
        step = run.steps[idx]
        attempt = step.attempts + 1
        now = eng.clock.now()
        started_at = (
            step.started_at if step.status == StepStatus.RUNNING and step.started_at else now
        )
        ctx = StepContext(eng, run, spec.step_id, attempt, state.workflow._input_for(run.input))
        state.ctx = ctx

        if spec.skip_if is not None and await self._call_predicate(spec, ctx):
            run = await self.commit(
                state,
                lambda r: self._advance(r, idx, output=None, status=StepStatus.SKIPPED),
                spec.step_id,
            )
            await eng._emit("step:skipped", run=run, step_id=spec.step_id)
            await eng._emit_if_ended(run)
            return run.status == RunStatus.RUNNING and run.lease is not None

        if eng._listens("step:started"):
            await eng._emit(
                "step:started", run=run, step_id=spec.step_id, data={"attempt": attempt}
            )
        if eng.plugins.middleware:
            await eng._observe(eng.plugins.before_step(run, step, attempt), run.id)
        try:
            result = await self._call_handler(state, spec, ctx)
        except SuspendSignal as sig:
            return await self._suspend(state, idx, sig.wait, ctx, started_at, attempt)
        except asyncio.CancelledError:
            reason = state.cancel_reason
            if reason is None:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if reason != "timeout":
                return False
            state.cancel_reason = None
            return await self._failed(
                state,
                idx,
                StepTimeoutError(
                    f"step {spec.step_id!r} exceeded its timeout of {spec.timeout}s",
                    run_id=run.id,
                    step_id=spec.step_id,
                ),
                started_at,
                attempt,
            )
        except Exception as exc:
            return await self._failed(state, idx, exc, started_at, attempt)
        try:
            output = to_json_value(result, "output")
        except Unstorable as exc:
            err = NonRetriableError(
                f"step {spec.step_id!r} returned a value that cannot be stored: "
                f"{exc.type_name} at {exc.path} (JSON-compatible values only: dict, list, str, "
                "int, float, bool, None, or a pydantic model)",
                run_id=run.id,
                step_id=spec.step_id,
            )
            return await self._failed(state, idx, err, started_at, attempt)
        if eng.plugins.middleware:
            await eng._observe(eng.plugins.after_step(run, step, output), run.id)
        changes = ctx._changes
        run = await self.commit(
            state,
            lambda r: self._advance(
                r, idx, output=output, started_at=started_at, attempts=attempt, changes=changes
            ),
            spec.step_id,
        )
        if eng._listens("step:completed"):
            await eng._emit("step:completed", run=run, step_id=spec.step_id, data=output)
        if run.is_terminal:
            await eng._emit_if_ended(run)
        return run.status == RunStatus.RUNNING and run.lease is not None

    async def _call_predicate(self, spec: StepSpec, ctx: StepContext) -> bool:
        assert spec.skip_if is not None
        result = spec.skip_if(ctx)
        if asyncio.iscoroutine(result):
            result = await result
        return bool(result)

    async def _call_handler(self, state: RunState, spec: StepSpec, ctx: StepContext) -> Any:
        eng = self.engine
        timer: asyncio.TimerHandle | asyncio.Task[None] | None = None
        if spec.timeout is not None:
            if isinstance(eng.clock, SystemClock):
                timer = asyncio.get_running_loop().call_later(
                    spec.timeout, state.interrupt, "timeout"
                )
            else:

                async def fire(t: float) -> None:
                    await eng.clock.sleep(t)
                    state.interrupt("timeout")

                timer = asyncio.create_task(fire(spec.timeout))
        state.in_handler = True
        try:
            if spec.is_async:
                result = await spec.handler(ctx)
            else:
                # Made here, on the loop, so the handler's thread never races
                # an interrupt to create it.
                _ = ctx.signal
                eng._tracker.pending += 1
                try:
                    result = await asyncio.to_thread(spec.handler, ctx)
                finally:
                    eng._tracker.pending -= 1
                if asyncio.iscoroutine(result):
                    result = await result
            if state.cancel_reason is not None:
                # The handler swallowed our cancellation; honour it anyway.
                raise asyncio.CancelledError()
            return result
        finally:
            state.in_handler = False
            if timer is not None:
                timer.cancel()

    async def _suspend(
        self,
        state: RunState,
        idx: int,
        wait: WaitState,
        ctx: StepContext,
        started_at: datetime,
        attempt: int,
    ) -> bool:
        eng = self.engine
        step_id = state.run.steps[idx].step_id
        changes = ctx._changes
        consumed: list[Any] = []

        def build(r: WorkflowRun) -> Patch:
            consumed.clear()
            if wait.kind == "event":
                for i, ev in enumerate(r.mailbox):
                    if ev.name == wait.event:
                        consumed.append(ev.data)
                        patch = self._advance(
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
                now=eng.clock.now(),
                started_at=started_at,
                attempts=attempt,
                context_changes=changes,
            )

        run = await self.commit(state, build, step_id)
        if consumed:
            await eng._emit("step:completed", run=run, step_id=step_id, data=consumed[0])
            await eng._emit_if_ended(run)
            return run.status == RunStatus.RUNNING and run.lease is not None
        await eng._emit("step:waiting", run=run, step_id=step_id, data=wait.model_dump(mode="json"))
        await eng._emit(
            "workflow:waiting", run=run, step_id=step_id, data=wait.model_dump(mode="json")
        )
        eng._note_due(run)
        return False

    async def _failed(
        self,
        state: RunState,
        idx: int,
        exc: BaseException,
        started_at: datetime,
        attempt: int,
    ) -> bool:
        eng = self.engine
        run = state.run
        spec = state.workflow.steps[idx]
        step = run.steps[idx]
        if eng.plugins.middleware:
            await eng._observe(eng.plugins.step_error(run, step, exc), run.id)
        if isinstance(exc, StepTimeoutError):
            code = ErrorCode.STEP_TIMEOUT
        elif isinstance(exc, WorkflowError) and not isinstance(exc, NonRetriableError):
            code = exc.code
        else:
            code = ErrorCode.STEP_FAILED
        final = isinstance(exc, (NonRetriableError, ValidationError))
        delay: float | None = None
        give_up_code = ErrorCode.STEP_FAILED
        if not final:
            if attempt < spec.retries:
                delay = eng.plugins.retry_delay(run, step, spec, attempt, exc)
            else:
                give_up_code = ErrorCode.MAX_RETRIES_EXCEEDED
        error = P.error_of(exc, code, spec.step_id)
        await eng._emit(
            "step:failed",
            run=run,
            step_id=spec.step_id,
            error=exc,
            data={"attempt": attempt, "will_retry": delay is not None},
        )
        if delay is not None:
            eng.counters.retries += 1
            until = eng.clock.now() + timedelta(seconds=delay)
            run = await self.commit(
                state,
                lambda r: P.retry_step(
                    r,
                    idx,
                    error=error,
                    until=until,
                    now=eng.clock.now(),
                    started_at=started_at,
                    attempts=attempt,
                ),
                spec.step_id,
            )
            data = {"attempt": attempt, "delay": delay, "next_attempt_at": until.isoformat()}
            await eng._emit(
                "step:retry-scheduled", run=run, step_id=spec.step_id, error=exc, data=data
            )
            await eng._emit("workflow:retry", run=run, step_id=spec.step_id, error=exc, data=data)
            eng._note_due(run)
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
        run = await self.commit(
            state,
            lambda r: P.fail_run(
                r,
                run_error,
                now=eng.clock.now(),
                idx=idx,
                started_at=started_at,
                attempts=attempt,
                step_error=error,
            ),
            spec.step_id,
        )
        await eng._emit_if_ended(run, error=exc)
        return False
