"""``Executor``: drives one leased run through its steps until it ends, suspends or is lost.

Parts layer: imports the runtime, the commit loop and the step outcomes. The
executor runs handlers (with their timeouts, in a thread for a plain
``def``), turns what they did into an outcome, and keeps going while the
commit left the run leased to this worker. A worker that lost its lease can
never write (see :mod:`commits`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import streamline_core._patches as P
from streamline_core._json import MAX_DEPTH, Unstorable, to_json_value
from streamline_core._runtime.checkpoints import Checkpoints
from streamline_core._runtime.children import Children
from streamline_core._runtime.commits import Dropped, Patch, Refused, commit
from streamline_core._runtime.compensation import Saga
from streamline_core._runtime.emitter import Emitter
from streamline_core._runtime.inflight import RunState
from streamline_core._runtime.jumps import Jumps
from streamline_core._runtime.outcomes import Outcomes, goes_on
from streamline_core._runtime.runtime import Runtime
from streamline_core.clock import Clock, SystemClock
from streamline_core.context import StepContext
from streamline_core.definition import StepSpec
from streamline_core.errors import (
    ControlFlowSignal,
    GotoSignal,
    NonRetriableError,
    StepTimeoutError,
    SuspendSignal,
    WorkflowError,
)
from streamline_core.run import RunStatus, StepStatus, WorkflowRun
from streamline_core.waits import WaitResolution

__all__ = ["Beat", "Executor"]

log = logging.getLogger("streamline.executor")


Beat = Callable[[str], Awaitable[None]]
"""What ``ctx.heartbeat()`` calls: renews this worker's lease on one run now."""


@dataclass(frozen=True, slots=True)
class _Services:
    """The :class:`~streamline_core.context.StepServices` every step of one engine shares."""

    clock: Clock
    events: Emitter
    beat: Beat
    children: Children
    checkpoints: Checkpoints

    async def emit(
        self, name: str, *, run_id: str, step_id: str, data: Any, workflow_id: str
    ) -> None:
        await self.events.emit(
            name, run_id=run_id, step_id=step_id, data=data, workflow_id=workflow_id
        )

    async def heartbeat(self, run_id: str) -> None:
        await self.beat(run_id)

    async def write_checkpoint(self, run_id: str, step_id: str, changes: Mapping[str, Any]) -> None:
        await self.checkpoints.write(run_id, step_id, changes)


class Executor:
    """Runs steps for one runtime; the per-run state lives in :class:`RunState`."""

    def __init__(
        self, rt: Runtime, outcomes: Outcomes, heartbeat: Beat, children: Children
    ) -> None:
        self._rt = rt
        self._outcomes = outcomes
        self._children = children
        self._services = _Services(rt.clock, rt.events, heartbeat, children, Checkpoints(rt))
        self._jumps = Jumps(rt, outcomes)
        self._saga = Saga(rt, self._services, self._call_handler)

    async def drive(self, state: RunState) -> None:
        """Execute ``state.run`` until it ends, suspends, is released or is lost."""
        rt = self._rt
        try:
            while True:
                run = state.run
                if run.is_terminal or run.lease is None or run.lease.owner != rt.worker_id:
                    return
                if run.paused or rt.stopping:
                    await commit(rt, state, lambda r: P.release(r, rt.clock.now()))
                    return
                idx = run.step_index(run.current_step_id) if run.current_step_id else -1
                if idx < 0 or idx >= len(state.spec.steps):
                    await rt.events.emit(
                        "engine:error",
                        run_id=run.id,
                        error=WorkflowError(
                            f"run {run.id!r} is at step {run.current_step_id!r}, which workflow "
                            f"{run.workflow_id!r} v{run.workflow_version} does not define",
                            run_id=run.id,
                        ),
                    )
                    return
                if run.compensation == "pending":
                    await self._saga.run(state)
                    return
                if (
                    run.status == RunStatus.WAITING
                    and run.wait is not None
                    and run.wait.kind != "retry"  # a due retry simply runs the step again
                ):
                    if run.wait.kind == "children":
                        if not await self._children.settle(state, idx):
                            return
                        continue
                    if not await self._finish_wait(state, idx):
                        return
                    continue
                if not await self._run_step(state, idx):
                    return
        except Dropped:
            return
        except asyncio.CancelledError:
            if state.cancel_reason is None:
                raise
        except Exception as exc:  # a bug or a store failure: report, let the lease expire
            log.exception("run %s: executor failed", state.run.id)
            await rt.events.emit("engine:error", run_id=state.run.id, error=exc)
        finally:
            state.done.set()
            rt.finished(state)

    async def _finish_wait(self, state: RunState, idx: int) -> bool:
        """A claimed waiting run is due: complete its timer, or time its wait out."""
        rt = self._rt
        wait = state.run.wait
        assert wait is not None
        now = rt.clock.now()
        if wait.until is None or wait.until > now:
            await commit(rt, state, lambda r: P.release(r, rt.clock.now()))
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
            return self._outcomes.advance(r, idx, output=output)

        run = await commit(rt, state, build)
        await rt.events.emit("step:completed", run=run, step_id=step_id, data=output)
        await rt.events.ended(run)
        return goes_on(run)

    async def _run_step(self, state: RunState, idx: int) -> bool:
        """Execute step ``idx`` once and commit its outcome. True to go on with the next step."""
        rt = self._rt
        outcomes = self._outcomes
        run = state.run
        spec = state.spec.steps[idx]
        step = run.steps[idx]
        attempt = step.attempts + 1
        now = rt.clock.now()
        started_at = (
            step.started_at if step.status == StepStatus.RUNNING and step.started_at else now
        )
        changes: dict[str, Any] = {}
        ctx = StepContext(
            self._services, run, spec.step_id, attempt, state.spec.input_for(run.input), changes
        )
        state.ctx = ctx

        if spec.skip_if is not None and await self._call_predicate(spec, ctx):
            run = await commit(
                rt,
                state,
                lambda r: outcomes.advance(r, idx, output=None, status=StepStatus.SKIPPED),
                spec.step_id,
            )
            await rt.events.emit("step:skipped", run=run, step_id=spec.step_id)
            await rt.events.ended(run)
            return goes_on(run)

        if rt.events.listens("step:started"):
            await rt.events.emit(
                "step:started", run=run, step_id=spec.step_id, data={"attempt": attempt}
            )
        if rt.plugins.middleware:
            await rt.events.observe(rt.plugins.before_step(run, step, attempt), run.id)
        try:
            result = await self._call_handler(state, spec, ctx)
        except SuspendSignal as sig:
            going = await outcomes.suspend(state, idx, sig.wait, changes, started_at, attempt)
            if sig.wait.kind == "children":
                await self._children.suspended(state.run)
            return going
        except GotoSignal as sig:
            return await self._jumps.jump(state, idx, sig.target, changes, started_at, attempt)
        except ControlFlowSignal:
            return False  # a checkpoint found the run no longer ours: nothing to write
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
            return await outcomes.failed(
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
            return await outcomes.failed(state, idx, exc, started_at, attempt)
        try:
            output = to_json_value(result, "output")
        except Unstorable as exc:
            err = NonRetriableError(
                f"step {spec.step_id!r} returned a value that cannot be stored: "
                f"{exc.type_name} at {exc.path} {exc.why or '(not JSON-compatible)'}; outputs "
                "are JSON values (dict, list, str, int, float, bool, None, or a pydantic "
                f"model), nested at most {MAX_DEPTH} levels, integers within 64 bits",
                run_id=run.id,
                step_id=spec.step_id,
            )
            return await outcomes.failed(state, idx, err, started_at, attempt)
        if rt.plugins.middleware:
            await rt.events.observe(rt.plugins.after_step(run, step, output), run.id)
        try:
            run = await commit(
                rt,
                state,
                lambda r: outcomes.advance(
                    r, idx, output=output, started_at=started_at, attempts=attempt, changes=changes
                ),
                spec.step_id,
            )
        except Refused as refused:
            return await outcomes.refused(state, idx, refused, started_at, attempt)
        if rt.events.listens("step:completed"):
            await rt.events.emit("step:completed", run=run, step_id=spec.step_id, data=output)
        if run.is_terminal:
            await rt.events.ended(run)
        return goes_on(run)

    async def _call_predicate(self, spec: StepSpec, ctx: StepContext) -> bool:
        assert spec.skip_if is not None
        result = spec.skip_if(ctx)
        if asyncio.iscoroutine(result):
            result = await result
        return bool(result)

    async def _call_handler(self, state: RunState, spec: StepSpec, ctx: StepContext) -> Any:
        rt = self._rt
        timer: asyncio.TimerHandle | asyncio.Task[None] | None = None
        if spec.timeout is not None:
            if isinstance(rt.clock, SystemClock):
                timer = asyncio.get_running_loop().call_later(
                    spec.timeout, state.interrupt, "timeout"
                )
            else:

                async def fire(t: float) -> None:
                    await rt.clock.sleep(t)
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
                rt.tracker.pending += 1
                try:
                    result = await asyncio.to_thread(spec.handler, ctx)
                finally:
                    rt.tracker.pending -= 1
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
