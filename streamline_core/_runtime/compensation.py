"""``Saga``: a failed run's ``compensate`` handlers, in reverse step order, each recorded durably.

Parts layer: imports the runtime and the commit loop. A run whose failure
(or, with ``compensate_on_cancel``, whose cancel) found ``done`` steps with
a ``compensate`` handler was left ``running`` with ``compensation =
"pending"`` and those steps' ``compensation = "pending"``
(:mod:`streamline_core._flow_patches`). Whoever holds its lease then drives
it here: the last pending step first, each handler retried up to its
``compensate_retries`` attempts (backoff of the step's retry options, on the
engine's clock), its end written as ``done`` or ``failed`` in one fenced
commit. A crash mid-saga leaves the run claimable; the next worker goes on
with the steps still ``pending``, so a step recorded ``done`` is never
compensated twice (a handler that was running when its worker died runs
again: at least once, like steps). The saga's last commit ends the run
``failed`` (``cancelled`` for a cancel) with its original error and
``run.compensation`` ``done`` or ``failed``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import streamline_core._flow_patches as F
import streamline_core._patches as P
from streamline_core._runtime.commits import Patch, commit
from streamline_core._runtime.inflight import RunState
from streamline_core._runtime.runtime import Runtime
from streamline_core.context import StepContext, StepServices
from streamline_core.definition import StepSpec, is_async_callable
from streamline_core.errors import (
    ControlFlowSignal,
    StepTimeoutError,
    ValidationError,
)
from streamline_core.retry import backoff_delay
from streamline_core.run import WorkflowRun

__all__ = ["Saga"]

log = logging.getLogger("streamline.run")

Call = Callable[[RunState, StepSpec, StepContext], Awaitable[Any]]


class Saga:
    """Runs the compensation of failed runs for one runtime."""

    def __init__(self, rt: Runtime, services: StepServices, call: Call) -> None:
        self._rt = rt
        self._services = services
        self._call = call

    async def run(self, state: RunState) -> None:
        """Compensate ``state.run`` step by step, then end it. Returns when it is not ours."""
        rt = self._rt
        run = state.run
        if all(s.compensation in (None, "pending") for s in run.steps):
            await rt.events.emit(
                "workflow:compensating",
                run=run,
                data={"error": run.error.model_dump(mode="json") if run.error else None},
            )
        while True:
            run = state.run
            if run.paused or rt.stopping:
                await commit(rt, state, lambda r: P.release(r, rt.clock.now()))
                return
            pending = [j for j, s in enumerate(run.steps) if s.compensation == "pending"]
            if not pending:
                break
            if not await self._compensate(state, pending[-1]):
                return
        run = await commit(
            rt,
            state,
            lambda r: (
                None if r.compensation != "pending" else F.end_compensation(r, rt.clock.now())
            ),
        )
        await rt.events.ended(run)

    async def _compensate(self, state: RunState, idx: int) -> bool:
        """Run step ``idx``'s compensate handler with its retries and record the end."""
        rt = self._rt
        spec = state.spec.steps[idx] if idx < len(state.spec.steps) else None
        step_id = state.run.steps[idx].step_id
        error: BaseException | None = None
        changes: dict[str, Any] = {}
        if spec is None or spec.compensate is None:
            error = ValidationError(f"step {step_id!r} has no compensate handler any more")
        else:
            comp = dataclasses.replace(
                spec, handler=spec.compensate, is_async=is_async_callable(spec.compensate)
            )
            for attempt in range(1, spec.compensate_retries + 1):
                changes = {}
                ctx = StepContext(
                    self._services,
                    state.run,
                    step_id,
                    attempt,
                    state.spec.input_for(state.run.input),
                    changes,
                    compensating=True,
                )
                state.ctx = ctx
                error = await self._attempt(state, comp, ctx)
                if error is None or state.cancel_reason is not None:
                    break
                log.warning(
                    "run %s: compensating step %r, attempt %d failed: %s",
                    state.run.id,
                    step_id,
                    attempt,
                    error,
                    extra={"run_id": state.run.id, "step_id": step_id},
                )
                if isinstance(error, ValidationError) or attempt == spec.compensate_retries:
                    break
                await rt.clock.sleep(
                    backoff_delay(
                        attempt,
                        spec.retry_delay,
                        spec.retry_backoff,
                        cap=spec.max_retry_delay,
                        jitter=spec.retry_jitter,
                    )
                )
        if state.cancel_reason is not None:
            return False  # lease lost, shutdown, rewound: not ours to record
        ok = error is None

        def build(r: WorkflowRun) -> Patch | None:
            if r.steps[idx].compensation != "pending":
                return None
            now = rt.clock.now()
            return F.step_compensated(
                idx,
                ok,
                now=now,
                lease_expires=rt.lease_value(now)["expires_at"],
                context_changes=changes if ok else None,
            )

        run = await commit(rt, state, build)
        if ok:
            await rt.events.emit("step:compensated", run=run, step_id=step_id)
        else:
            await rt.events.emit("step:compensation-failed", run=run, step_id=step_id, error=error)
        return True

    async def _attempt(
        self, state: RunState, spec: StepSpec, ctx: StepContext
    ) -> BaseException | None:
        """One attempt of a compensate handler: ``None`` when it succeeded, else the failure."""
        try:
            await self._call(state, spec, ctx)
        except ControlFlowSignal:
            return ValidationError(
                f"step {spec.step_id!r}: a compensate handler may not suspend, jump or "
                "wait (ctx.wait, wait_for, sleep, goto)",
                run_id=state.run.id,
                step_id=spec.step_id,
            )
        except asyncio.CancelledError:
            reason = state.cancel_reason
            if reason is None:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            if reason != "timeout":
                return None  # the caller sees cancel_reason and stops
            state.cancel_reason = None
            return StepTimeoutError(
                f"compensating step {spec.step_id!r} exceeded its timeout of {spec.timeout}s",
                run_id=state.run.id,
                step_id=spec.step_id,
            )
        except Exception as exc:
            return exc
        return None
