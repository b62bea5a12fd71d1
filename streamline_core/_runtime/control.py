"""``Control``: client operations on one run — resume (by id or hook token), cancel, pause, rewind.

Parts layer: imports the runtime, reads, the client CAS loop and the
dispatcher. Each operation decides on the run as read (``_patches``) and
writes with :func:`~streamline_core._runtime.commits.cas`; a run this worker
can execute at once is leased to it in the same write and dispatched.
"""

from __future__ import annotations

import asyncio
from typing import Any

import streamline_core._flow_patches as F
import streamline_core._patches as P
from streamline_core._hook_tokens import hash_token, run_id_of
from streamline_core._json import Unstorable, to_json_value
from streamline_core._runtime.commits import Patch, cas
from streamline_core._runtime.dispatch import Dispatcher
from streamline_core._runtime.reads import Reads
from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import (
    InvalidStateError,
    StepNotFoundError,
    ValidationError,
    WorkflowNotFoundError,
)
from streamline_core.run import ACTIVE_STATUSES, RunStatus, WorkflowRun
from streamline_core.store import RunQuery

__all__ = ["Control", "HOOK_EARLY_WAIT"]

HOOK_EARLY_WAIT = 5.0
"""Real seconds ``resume_hook`` waits for a run still executing the step that made the hook."""


class Control:
    """Run control for one runtime."""

    def __init__(self, rt: Runtime, reads: Reads, dispatcher: Dispatcher) -> None:
        self._rt = rt
        self._reads = reads
        self._dispatcher = dispatcher

    def complete_waiting(self, run: WorkflowRun, output: Any) -> Patch:
        """The patch that completes a waiting run's current step with ``output``."""
        idx = run.step_index(run.current_step_id) if run.current_step_id else -1
        if idx < 0:
            raise InvalidStateError(f"run {run.id!r} has no current step", run_id=run.id)
        return P.complete_step(
            run,
            idx,
            output=output,
            now=self._rt.clock.now(),
            lease=self._rt.local_lease(run),
            keep_running=False,
        )

    async def resume(self, run_id: str, payload: Any, workflow_id: str | None) -> WorkflowRun:
        """Complete the ``ctx.wait`` step of a waiting run with ``payload``.

        Raises:
            ValidationError: the payload is not JSON-compatible.
            WorkflowNotFoundError: unknown or out of scope.
            InvalidStateError: the run is not waiting on ``ctx.wait``.
        """
        rt = self._rt
        try:
            stored_payload = to_json_value(payload, "payload")
        except Unstorable as exc:
            raise ValidationError(f"resume payload is not JSON-compatible: {exc}") from None

        def build(run: WorkflowRun) -> Patch:
            if run.status != RunStatus.WAITING or run.wait is None or run.wait.kind != "human":
                raise InvalidStateError(
                    f"run {run.id!r} is {run.status.value}"
                    + (f" ({run.wait.kind})" if run.wait else "")
                    + "; only a run waiting on ctx.wait can be resumed",
                    run_id=run.id,
                )
            return self.complete_waiting(run, stored_payload)

        run = await cas(rt, self._reads, run_id, workflow_id, build)
        rt.watchers.notify(run.id)
        await rt.events.emit("workflow:resumed", run=run, data=stored_payload)
        await rt.events.ended(run)
        await self._dispatcher.after_client_write(run)
        return run

    async def resume_by_hook(
        self, token: str, payload: Any, wait: float = HOOK_EARLY_WAIT
    ) -> WorkflowRun:
        """Resume the run waiting on hook ``token``.

        Raises:
            WorkflowNotFoundError: the token is malformed, unknown or used.
        """

        def not_found() -> WorkflowNotFoundError:
            return WorkflowNotFoundError("unknown or already used hook token")

        run_id = run_id_of(token)
        if run_id is None:
            raise not_found()
        token_hash = hash_token(token)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            run = await self._reads.get(run_id)
            if run is None:
                raise not_found()
            if (
                run.status == RunStatus.WAITING
                and run.wait is not None
                and run.wait.kind == "human"
                and run.wait.hook_token_hash == token_hash
            ):
                try:
                    return await self.resume(run.id, payload, None)
                except InvalidStateError:
                    raise not_found() from None
            # The token may come back before the step that created it has
            # committed its wait (a fast webhook): give that step a moment.
            left = deadline - loop.time()
            if run.status != RunStatus.RUNNING or left <= 0:
                raise not_found()
            await self._rt.watchers.watch(run_id, min(0.05, left))

    async def cancel(self, run_id: str, reason: str | None, workflow_id: str | None) -> WorkflowRun:
        """Cancel an active run; a step executing here is interrupted at once.

        Raises:
            WorkflowNotFoundError: unknown or out of scope.
            InvalidStateError: the run already ended.
        """
        rt = self._rt

        def build(r: WorkflowRun) -> Patch:
            spec = rt.registry.for_run(r)
            if spec is None or not spec.compensate_on_cancel:
                return P.cancel_run(r, reason, rt.clock.now())
            saga = [s.compensate is not None for s in spec.steps]
            return F.cancel_and_compensate(
                r, reason, has_compensate=saga, now=rt.clock.now(), lease=None
            )

        run = await cas(rt, self._reads, run_id, workflow_id, build)
        state = rt.inflight.get(run.id)
        if state is not None:
            state.interrupt("cancelled")
        if run.compensation == "pending" and not run.is_terminal:
            rt.wake()  # compensate_on_cancel: the saga runs wherever the run is claimed
        await rt.events.ended(run)
        return run

    async def set_paused(self, run_id: str, paused: bool, workflow_id: str | None) -> WorkflowRun:
        """Pause (never claimed) or unpause (claimable again, here at once when due).

        Raises:
            WorkflowNotFoundError: unknown or out of scope.
            InvalidStateError: the run already ended.
        """
        rt = self._rt

        def build(run: WorkflowRun) -> Patch:
            lease = None
            if not paused and run.lease is None:
                lease = rt.local_lease(run.model_copy(update={"paused": False}))
            return P.set_paused(run, paused, rt.clock.now(), lease)

        run = await cas(rt, self._reads, run_id, workflow_id, build)
        if not paused:
            await self._dispatcher.after_client_write(run)
        return run

    async def rewind(self, run_id: str, step_id: str, workflow_id: str | None) -> WorkflowRun:
        """Re-run from ``step_id`` (any status); a local execution is stopped first.

        Raises:
            WorkflowNotFoundError: unknown or out of scope.
            StepNotFoundError: the run has no such step.
            InvalidStateError: another active run holds this run's idempotency key.
        """
        rt = self._rt
        current = await self._reads.require(run_id, workflow_id)
        if current.is_terminal and current.idempotency_key is not None:
            holders = await rt.io.find(
                RunQuery(
                    workflow_id=current.workflow_id,
                    tenant_id=current.tenant_id,
                    idempotency_key=current.idempotency_key,
                    status=tuple(ACTIVE_STATUSES),
                    limit=1,
                )
            )
            if holders.items:
                raise InvalidStateError(
                    f"cannot rewind run {run_id!r}: run {holders.items[0].id!r} holds its "
                    f"idempotency key {current.idempotency_key!r}",
                    run_id=run_id,
                )
        if current.step_index(step_id) < 0:
            raise StepNotFoundError(
                f"run {run_id!r} has no step {step_id!r}", run_id=run_id, step_id=step_id
            )
        # Stop a local execution first, so its result (even one already on its
        # way to the store) is never written onto the rewound run.
        state = rt.inflight.get(run_id)
        if state is not None:
            state.interrupt("rewound")
        run = await cas(
            rt,
            self._reads,
            run_id,
            workflow_id,
            lambda r: P.rewind_run(r, step_id, rt.clock.now(), rt.local_lease(r)),
        )
        if state is not None:
            await state.done.wait()
        await self._dispatcher.after_client_write(run)
        return run
