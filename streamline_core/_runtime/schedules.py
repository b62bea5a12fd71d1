"""``ScheduleBook``: schedules kept as durable runs, and the tick that fires their occurrences.

Parts layer: imports the runtime, reads, creation, control and the commit
loop. A schedule is one run of the internal workflow ``streamline.schedule``
(id derived from the schedule's name), so it needs no Store operation of its
own: the claim gives one worker at a time the schedule, a lease expiry hands
it to another, ``paused`` is the run's flag, and its context holds the
configuration and the cursor. Its one step, ``tick``, fires what is due and
suspends as a *retry wait* until the next occurrence — a due retry runs the
same step again, which is the loop a schedule needs.

Every occurrence's run id is derived from (tenant, name, instant), so a tick
re-run after a crash, two workers racing, or a backfill over fired
occurrences find the run that exists instead of starting another.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import datetime, timedelta
from typing import Any

import pydantic

from streamline_core._runtime.commits import cas
from streamline_core._runtime.control import Control
from streamline_core._runtime.creation import Creation
from streamline_core._runtime.reads import Reads
from streamline_core._runtime.runtime import Runtime
from streamline_core.context import StepContext
from streamline_core.definition import StepConfig
from streamline_core.errors import (
    ConflictError,
    InvalidStateError,
    NonRetriableError,
    SuspendSignal,
    ValidationError,
    WorkflowNotFoundError,
)
from streamline_core.recurrence import Recurrence
from streamline_core.run import ACTIVE_STATUSES, TERMINAL_STATUSES, WaitState, WorkflowRun
from streamline_core.schedule_info import (
    SCHEDULE_WORKFLOW,
    ScheduleInfo,
    ScheduleState,
    iso_utc,
    occurrence_run_id,
    schedule_run_id,
)
from streamline_core.store import RunQuery
from streamline_core.workflow_spec import WorkflowSpec

__all__ = ["ScheduleBook", "ON_TIME_GRACE", "MAX_SCAN", "MAX_BACKFILL"]

ON_TIME_GRACE = timedelta(seconds=60)
"""An occurrence started later than this after its instant counts as missed (catch-up decides)."""
MAX_SCAN = 10_000
"""Occurrences one tick looks at; a longer backlog is worked through by ticks in a row."""
MAX_BACKFILL = 10_000
"""Occurrences one ``backfill`` call may start."""
ERROR_RETRY = 30.0
"""Seconds before a tick that failed (store down, workflow not registered here) tries again."""


def recurrence(state: ScheduleState) -> Recurrence:
    """The hook's view of a schedule."""
    return Recurrence(
        name=state.name,
        cron=state.cron,
        every=state.every,
        spec=state.spec,
        timezone=state.timezone,
    )


class ScheduleBook:
    """One runtime's schedules: declarations, the tick, the ``engine.schedules`` operations."""

    def __init__(self, rt: Runtime, reads: Reads, creation: Creation, control: Control) -> None:
        self._rt = rt
        self._reads = reads
        self._creation = creation
        self._control = control
        self._declared: dict[str, ScheduleState] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._spec: WorkflowSpec | None = None

    # --- declarations ------------------------------------------------------------------

    def next_after(self, state: ScheduleState, after: datetime) -> datetime | None:
        """The schedule's first occurrence strictly after ``after`` (``None``: never again)."""
        return self._rt.plugins.next_occurrence(recurrence(state), after)

    def declare(self, state: ScheduleState) -> None:
        """Remember a declaration; a started engine writes it at once, others at ``start``."""
        if self._spec is None:
            # Registered on the first declaration only, so an engine without
            # schedules never claims another application's schedule runs.
            spec = WorkflowSpec(
                SCHEDULE_WORKFLOW,
                {"tick": StepConfig(self._tick, retries=20)},
                context=lambda value: dict(value),
            )
            self._spec = self._rt.registry.add(spec)
            self._rt.wake()
        self._declared[state.name] = state
        if self._rt.started:
            task = asyncio.get_running_loop().create_task(self.write(state))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def settle(self) -> None:
        """Wait for declarations still being written (shutdown must not lose one)."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    async def write_declared(self) -> None:
        """Write every declaration to the store (a worker does this as it starts)."""
        for state in list(self._declared.values()):
            await self.write(state)

    async def write(self, state: ScheduleState) -> None:
        """Create the schedule's run, or update its declared fields (keeping pause and progress)."""
        rt = self._rt
        assert self._spec is not None
        run_id = schedule_run_id(state.name, state.tenant_id)
        run = await rt.io.get(run_id)
        if run is not None and run.is_terminal:
            # A schedule cancelled by hand is gone; declaring it again starts it anew.
            await rt.io.delete(RunQuery(run_ids=[run_id], status=tuple(TERMINAL_STATUSES)))
            run = None
        if run is None:
            now = rt.clock.now()
            first = self.next_after(state, now)
            fresh = state.model_copy(update={"cursor": now, "next_fire_at": first})
            try:
                await self._creation.create(
                    self._spec,
                    fresh.model_dump(mode="json"),
                    meta={"schedule": state.name},
                    idempotency_key=None,
                    priority=0,
                    tenant_id=state.tenant_id,
                    start_at=first or now,
                    run_id=run_id,
                )
                return
            except ConflictError:  # another worker declared it first: update that one
                pass
        declared = state.declared()

        def build(r: WorkflowRun) -> dict[str, Any]:
            changed = {k: v for k, v in declared.items() if r.context.get(k) != v}
            patch: dict[str, Any] = {f"context.{k}": v for k, v in changed.items()}
            if patch:
                # A new cadence is read at once: tick now, which only sleeps again.
                patch["next_run_at"] = rt.clock.now()
                patch["updated_at"] = rt.clock.now()
            return patch

        current = await self._reads.require(run_id, SCHEDULE_WORKFLOW)
        if build(current):
            await cas(rt, self._reads, run_id, SCHEDULE_WORKFLOW, build)
            rt.wake()

    # --- the tick ----------------------------------------------------------------------

    async def _tick(self, ctx: StepContext) -> Any:
        rt = self._rt
        try:
            state = ScheduleState.model_validate(ctx.context)
        except pydantic.ValidationError as exc:
            raise NonRetriableError(
                f"schedule run {ctx.run_id!r} holds no schedule: {exc}"
            ) from None
        local = self._declared.get(state.name)
        if local is not None and local.tenant_id == state.tenant_id:
            # This process's code declared it: its settings win even before the
            # write that stores them lands (a schedule declared on a started worker).
            declared = local.declared()
            for key, value in declared.items():
                if ctx.context.get(key) != value:
                    ctx.set(key, value)
            state = state.model_copy(update=local.model_dump(include=set(declared)))
        now = rt.clock.now()
        try:
            changes, until = await self._fire_due(state, now)
        except Exception as exc:  # never let the schedule's run fail: report and come back
            await rt.events.emit("scheduler:error", run_id=ctx.run_id, error=exc)
            until = now + timedelta(seconds=ERROR_RETRY)
            raise SuspendSignal(_wait(state, until)) from None
        for key, value in changes.items():
            ctx.set(key, value)
        if until is None:
            return {"ended": iso_utc(now)}  # the recurrence never fires again
        raise SuspendSignal(_wait(state, until))

    async def _fire_due(
        self, state: ScheduleState, now: datetime
    ) -> tuple[dict[str, Any], datetime | None]:
        """Start the runs of the occurrences due by ``now``; the context changes and next wake."""
        start = state.cursor
        if state.catch_up_window is not None:
            oldest = now - max(timedelta(seconds=state.catch_up_window), ON_TIME_GRACE)
            start = max(start, oldest)
        due: list[datetime] = []
        at = start
        while len(due) < MAX_SCAN:
            nxt = self.next_after(state, at)
            if nxt is None or nxt > now:
                break
            due.append(nxt)
            at = nxt
        backlog = len(due) == MAX_SCAN
        on_time = [o for o in due if now - o <= ON_TIME_GRACE]
        missed = [o for o in due if now - o > ON_TIME_GRACE]
        chosen = {"all": missed, "latest": missed[-1:], "none": []}[state.catch_up]
        last = await self._fire(state, chosen + on_time)
        until = now if backlog else self.next_after(state, now)
        changes: dict[str, Any] = {
            "cursor": iso_utc(at if backlog else now),
            "next_fire_at": None if until is None else iso_utc(until),
        }
        if last is not None:
            changes["last_run_id"] = last
        return changes, until

    async def _fire(self, state: ScheduleState, instants: list[datetime]) -> str | None:
        """Start one run per instant (overlap policy against the run before them); the last id."""
        if not instants:
            return None
        rt = self._rt
        previous = None if state.last_run_id is None else await rt.io.get(state.last_run_id)
        active = previous is not None and previous.status in ACTIVE_STATUSES
        last: str | None = None
        for at in instants:
            run_id = occurrence_run_id(state.name, state.tenant_id, at)
            if await rt.io.get(run_id) is not None:  # fired before a crash, or backfilled
                last = run_id
                continue
            if active and state.overlap == "skip":
                continue
            if active and state.overlap == "cancel_previous" and previous is not None:
                try:
                    await self._control.cancel(
                        previous.id, f"superseded by schedule {state.name!r}", None
                    )
                except InvalidStateError:
                    pass  # it ended meanwhile
                active = False
            last = (await self.start_run(state, at, run_id)).id
        return last

    async def start_run(
        self, state: ScheduleState, at: datetime, run_id: str | None, **meta: Any
    ) -> WorkflowRun:
        """Start the schedule's workflow for the occurrence ``at`` (the existing run if any)."""
        try:
            return await self._creation.create(
                self._rt.registry.get(state.workflow),
                state.input,
                meta={"schedule": state.name, "scheduled_for": iso_utc(at), **meta},
                idempotency_key=None,
                priority=0,
                tenant_id=state.tenant_id,
                start_at=None,
                run_id=run_id,
            )
        except ConflictError:
            assert run_id is not None
            existing = await self._rt.io.get(run_id)
            if existing is None:
                raise
            return existing

    # --- operations --------------------------------------------------------------------

    async def _require(self, name: str) -> tuple[WorkflowRun, ScheduleState]:
        run = await self._reads.get(schedule_run_id(name, self._rt.tenant_id), SCHEDULE_WORKFLOW)
        if run is None or run.is_terminal:
            raise WorkflowNotFoundError(f"no schedule named {name!r}")
        return run, ScheduleState.model_validate(run.context)

    def info(self, run: WorkflowRun) -> ScheduleInfo:
        """What ``list`` and ``get`` show of a schedule's run."""
        state = ScheduleState.model_validate(run.context)
        return ScheduleInfo(
            name=state.name,
            workflow=state.workflow,
            spec=recurrence(state).describe(),
            timezone=state.timezone,
            paused=run.paused,
            next_fire_at=None if run.paused else state.next_fire_at,
            last_run_id=state.last_run_id,
            overlap=state.overlap,
            catch_up=state.catch_up,
            run_id=run.id,
        )

    async def list(self) -> list[ScheduleInfo]:
        """Every schedule in the store (this engine's tenant), by name."""
        page = await self._reads.find(
            RunQuery(
                workflow_id=SCHEDULE_WORKFLOW,
                status=tuple(ACTIVE_STATUSES),
                tenant_id=self._rt.tenant_id,
                limit=None,
            )
        )
        return sorted((self.info(r) for r in page.items), key=lambda i: i.name)

    async def get(self, name: str) -> ScheduleInfo | None:
        """One schedule, or ``None``."""
        try:
            run, _ = await self._require(name)
        except WorkflowNotFoundError:
            return None
        return self.info(run)

    async def set_paused(self, name: str, paused: bool) -> ScheduleInfo:
        """Pause, or unpause without firing what came due while paused."""
        rt = self._rt
        run, state = await self._require(name)
        if not paused and run.paused:
            now = rt.clock.now()
            until = self.next_after(state, now)
            await cas(
                rt,
                self._reads,
                run.id,
                SCHEDULE_WORKFLOW,
                lambda r: {
                    "context.cursor": iso_utc(now),
                    "context.next_fire_at": None if until is None else iso_utc(until),
                    "next_run_at": until or now,
                    "updated_at": now,
                },
            )
        return self.info(await self._control.set_paused(run.id, paused, SCHEDULE_WORKFLOW))

    async def trigger(self, name: str) -> WorkflowRun:
        """One run now, outside the cadence (no overlap policy: it was asked for)."""
        run, state = await self._require(name)
        started = await self.start_run(state, self._rt.clock.now(), None, trigger="manual")
        await cas(
            self._rt,
            self._reads,
            run.id,
            SCHEDULE_WORKFLOW,
            lambda r: {"context.last_run_id": started.id},
        )
        return started

    async def backfill(
        self, name: str, start: datetime, end: datetime
    ) -> builtins.list[WorkflowRun]:
        """The run of every occurrence in ``[start, end)``: existing ones, the rest started now."""
        _, state = await self._require(name)
        instants: list[datetime] = []
        at = self.next_after(state, start - timedelta(microseconds=1))
        while at is not None and at < end:
            if len(instants) == MAX_BACKFILL:
                raise ValidationError(
                    f"backfill of {name!r} spans more than {MAX_BACKFILL} occurrences; "
                    "split the range"
                )
            instants.append(at)
            at = self.next_after(state, at)
        return [
            await self.start_run(state, o, occurrence_run_id(state.name, state.tenant_id, o))
            for o in instants
        ]

    async def delete(self, name: str) -> None:
        """Stop and remove the schedule (its runs stay); declaring it again brings it back."""
        self._declared.pop(name, None)
        run, _ = await self._require(name)
        try:
            await self._control.cancel(run.id, "schedule deleted", SCHEDULE_WORKFLOW)
        except InvalidStateError:
            pass
        await self._reads.delete(RunQuery(run_ids=[run.id], tenant_id=self._rt.tenant_id))


def _wait(state: ScheduleState, until: datetime) -> WaitState:
    # A retry wait, not a timer: when due, the worker runs ``tick`` again
    # instead of completing it, so one step loops for the schedule's lifetime.
    return WaitState(kind="retry", reason=f"schedule {state.name!r}: next occurrence", until=until)
