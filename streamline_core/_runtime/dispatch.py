"""``Dispatcher``: local execution — runs this worker leased go onto tasks, and come off.

Parts layer: imports the runtime, reads, commits, the executor and
heartbeats. It takes what a claim returned (dead-lettering runs whose
workers kept dying), the runs a client write leased to this worker, and
``Workflow.execute``; at shutdown it drains what is in flight and releases
every lease.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import streamline_core._flow_patches as F
from streamline_core._runtime.commits import release_quietly
from streamline_core._runtime.executor import Executor
from streamline_core._runtime.heartbeats import Heartbeats
from streamline_core._runtime.inflight import RunState
from streamline_core._runtime.reads import Reads
from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import (
    ConflictError,
    ErrorCode,
    StoreError,
    WorkflowNotFoundError,
)
from streamline_core.run import RunError, RunStatus, StepStatus, WorkflowRun
from streamline_core.slots import LimitedClaims

__all__ = ["Dispatcher"]


class Dispatcher:
    """Puts runs leased to this worker on their own tasks."""

    def __init__(
        self, rt: Runtime, reads: Reads, executor: Executor, heartbeats: Heartbeats
    ) -> None:
        self._rt = rt
        self._reads = reads
        self._executor = executor
        self._heartbeats = heartbeats
        # Runs claimed again while a stale drive of theirs (rewound, or whose
        # lease ran out) is still ending here: driven anew once it has ended.
        self._again: set[str] = set()

    def dispatch(self, run: WorkflowRun) -> bool:
        """Execute a run this worker has just leased, on its own task."""
        rt = self._rt
        spec = rt.registry.for_run(run)
        if spec is None or run.id in rt.inflight:
            return False
        assert run.lease is not None
        state = RunState(run=run, spec=spec, lease_expires=run.lease.expires_at)
        rt.inflight[run.id] = state
        state.task = asyncio.create_task(self._drive(state), name=f"streamline:{run.id}")
        # Client engines' `execute` holds leases too: heartbeats need no worker loop.
        self._heartbeats.ensure_running()
        return True

    async def _drive(self, state: RunState) -> None:
        await self._executor.drive(state)
        if state.run.id in self._again:
            self._again.discard(state.run.id)
            await self._redrive(state.run.id)

    async def _redrive(self, run_id: str) -> None:
        """Drive a run this worker leased while an older drive of it was ending."""
        rt = self._rt
        try:
            current = await rt.io.get(run_id)
        except StoreError as exc:
            await rt.events.emit("engine:error", run_id=run_id, error=exc)
            return
        if (
            current is not None
            and not current.is_terminal
            and current.lease is not None
            and current.lease.owner == rt.worker_id
            and not rt.stopping
        ):
            self.dispatch(current)

    async def after_client_write(self, run: WorkflowRun) -> None:
        """Run a run a client write just leased to this worker; otherwise wake local timers."""
        rt = self._rt
        if run.lease is not None and run.lease.owner == rt.worker_id and not run.is_terminal:
            if not self.dispatch(run):
                await release_quietly(rt, run)
        else:
            rt.wake()

    async def take_claimed(self, runs: list[WorkflowRun]) -> None:
        """Drive what a claim leased (or dead-letter it)."""
        rt = self._rt
        now = rt.clock.now()
        for run in runs:
            rt.counters.claims += 1
            if run.next_run_at is not None:
                lag = max(0.0, (now - run.next_run_at).total_seconds())
                rt.counters.last_pickup_lag = lag
                rt.counters.max_pickup_lag = max(rt.counters.max_pickup_lag, lag)
            if (
                run.recoveries > rt.max_recoveries
                and run.status == RunStatus.RUNNING
                and run.compensation is None
            ):
                await self._dead_letter(run)
                continue
            if (
                run.recoveries > rt.max_recoveries
                and run.status == RunStatus.RUNNING
                and run.compensation == "pending"
            ):
                await self._give_up_saga(run)  # its compensations keep killing workers
                continue
            if rt.registry.for_run(run) is None:
                # Only a store ignoring claim's versions gets here; the run stays
                # leased until the lease expires, so nobody spins on it.
                await rt.events.emit(
                    "engine:error",
                    run=run,
                    error=WorkflowNotFoundError(
                        f"run {run.id!r} needs workflow {run.workflow_id!r} version "
                        f"{run.workflow_version!r}, which this worker does not have",
                        run_id=run.id,
                    ),
                )
                continue
            idx = run.step_index(run.current_step_id) if run.current_step_id else -1
            if (
                run.status == RunStatus.RUNNING
                and idx >= 0
                and run.steps[idx].status == StepStatus.RUNNING
                and run.compensation is None
            ):
                rt.counters.recoveries += 1
                await rt.events.emit(
                    "workflow:recovered",
                    run=run,
                    step_id=run.current_step_id,
                    data={"recoveries": run.recoveries},
                )
            stale = rt.inflight.get(run.id)
            if stale is not None:
                # Our own older drive of it is still ending; it was rewound
                # meanwhile if the epoch moved, so stop it now.
                if stale.epoch != run.epoch:
                    stale.interrupt("rewound")
                self._again.add(run.id)
                continue
            self.dispatch(run)

    async def _dead_letter(self, run: WorkflowRun) -> None:
        rt = self._rt
        error = RunError(
            code=ErrorCode.DEAD_LETTERED.value,
            message=(
                f"run {run.id!r} was recovered {run.recoveries} times (max_recoveries="
                f"{rt.max_recoveries}); its workers keep dying, so it is dead-lettered"
            ),
            step_id=run.current_step_id,
        )
        spec = rt.registry.for_run(run)
        saga = [s.compensate is not None for s in spec.steps] if spec is not None else []
        now = rt.clock.now()
        try:
            done = await rt.io.transition(
                run.id,
                run.revision,
                F.fail_or_compensate(
                    run, error, has_compensate=saga, now=now, lease=rt.lease_value(now)
                ),
                owner=rt.worker_id,
            )
        except StoreError as exc:
            await rt.events.emit("engine:error", run_id=run.id, error=exc)
            return
        rt.counters.dead_lettered += 1
        if done.compensation == "pending":
            self.dispatch(done)  # its saga runs here, on the lease it keeps
        await rt.events.ended(done)

    async def _give_up_saga(self, run: WorkflowRun) -> None:
        rt = self._rt
        try:
            done = await rt.io.transition(
                run.id,
                run.revision,
                F.abandon_compensation(run, rt.clock.now()),
                owner=rt.worker_id,
            )
        except StoreError as exc:
            await rt.events.emit("engine:error", run_id=run.id, error=exc)
            return
        rt.counters.dead_lettered += 1
        await rt.events.ended(done)

    async def execute(self, run_id: str, workflow_id: str | None) -> WorkflowRun:
        """Drive the run here until it suspends or ends (``Workflow.execute``)."""
        rt = self._rt
        reads = self._reads
        run = await reads.require(run_id, workflow_id)
        state = rt.inflight.get(run.id)
        if state is not None or run.is_terminal or run.paused:
            return run
        now = rt.clock.now()
        if run.lease is not None and run.lease.expires_at > now and run.lease.owner != rt.worker_id:
            return run
        if run.next_run_at is None or run.next_run_at > now:
            return run
        if rt.registry.for_run(run) is None:
            raise WorkflowNotFoundError(
                f"workflow {run.workflow_id!r} version {run.workflow_version!r} is not "
                "registered on this engine",
                run_id=run.id,
            )
        if run.is_limited:
            # Only the store's claim_limited may lease a flow-controlled run:
            # with every slot of its key taken, the run is returned unchanged.
            limited = cast(LimitedClaims, rt.io)
            got = await limited.claim_limited(
                rt.worker_id, now, rt.lease, 1, rt.registry.versions(), rt.tenant_id, run.id
            )
            if not got:
                return await reads.require(run_id, workflow_id)
            leased = got[0]
        else:
            patch: dict[str, Any] = {"lease": rt.lease_value(now)}
            if run.lease is not None and run.status == RunStatus.RUNNING:
                patch["recoveries"] = run.recoveries + 1
            try:
                leased = await rt.io.transition(run.id, run.revision, patch)
            except ConflictError:
                return await reads.require(run_id, workflow_id)
        if not self.dispatch(leased):
            return leased
        state = rt.inflight.get(run.id)
        if state is not None:
            await state.done.wait()
        return await reads.require(run_id, workflow_id)

    async def drain(self, timeout: float) -> None:
        """Let in-flight steps commit within ``timeout`` real seconds, cancel the rest,
        and release every lease this worker still holds."""
        rt = self._rt
        states = list(rt.inflight.values())
        if not states:
            return
        pending = {s.task for s in states if s.task is not None and not s.task.done()}
        if pending:
            _, still = await asyncio.wait(pending, timeout=timeout)
            for s in states:
                if s.task in still:
                    s.interrupt("shutdown")
            if still:
                await asyncio.wait(still, timeout=5.0)
        for s in states:
            await release_quietly(rt, s.run)

    def abandon(self) -> list[asyncio.Task[None]]:
        """The tasks of every in-flight run, for a crash simulation to cancel (leases kept)."""
        return [s.task for s in self._rt.inflight.values() if s.task is not None]
