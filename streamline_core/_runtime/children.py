"""``Children``: child runs — started by a step, joined, waking their parent, cancelled with it.

Parts layer: imports the runtime, the commit loop and the step outcomes; it
creates and cancels runs through callables the client binds (creation and
control sit above it). Everything goes through the store, so it works across
processes:

* A step starts children (ids derived, see :mod:`_child_ids`), then suspends
  on a ``children`` wait. The parent holds no lease while it waits.
* A child's end wakes its parent (one conditional write making it due). The
  parent re-reads its children whenever it is claimed, and its wait is due
  again every ``join_recheck`` seconds anyway, so a wake-up lost in a crash
  delays the parent and never strands it.
* Two orders make the races safe. A cancel writes the parent, then looks for
  its children; a starting step creates its children, then reads the parent
  (and cancels them if it was cancelled): one of the two sees the other. A
  child writes its end, then reads its parent; a suspending parent writes
  its wait, then reads its children (and wakes itself if the join is
  already decided); a parent deciding its join re-decides if anything wrote
  to it meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from streamline_core._joins import Decision, Join, decide, join_wait
from streamline_core._runtime.commits import Patch, Refused, commit
from streamline_core._runtime.inflight import RunState
from streamline_core._runtime.outcomes import Outcomes, goes_on
from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import (
    ChildWorkflowError,
    ConflictError,
    InvalidStateError,
    StepTimeoutError,
    ValidationError,
    WorkflowError,
    WorkflowNotFoundError,
)
from streamline_core.run import ACTIVE_STATUSES, RunStatus, WaitState, WorkflowRun
from streamline_core.store import RunQuery
from streamline_core.workflow_spec import JOIN_RECHECK, WorkflowSpec

__all__ = ["Children"]

log = logging.getLogger("streamline.engine")

CreateRun = Callable[..., Awaitable[WorkflowRun]]
"""``Creation.create``."""
CancelRun = Callable[[str, str], Awaitable[Any]]
"""Cancel one run by id with a reason (``Control.cancel``)."""
AfterWrite = Callable[[WorkflowRun], Awaitable[None]]
"""Run what a client write leased to this worker (``Dispatcher.after_client_write``)."""

_ATTEMPTS = 50
_PAGE = 200


class _Changed(Exception):
    """The parent was written to while its join was being decided: decide again."""

    def __init__(self, run: WorkflowRun) -> None:
        super().__init__(run.id)
        self.run = run


def _consume(task: asyncio.Future[None]) -> None:
    # A start shielded from a cancelled step: its outcome has no awaiter left.
    if not task.cancelled():
        task.exception()


class Children:
    """Child runs for one runtime (the ``ChildOps`` of every step context)."""

    def __init__(self, rt: Runtime, outcomes: Outcomes) -> None:
        self._rt = rt
        self._outcomes = outcomes
        self._create: CreateRun | None = None
        self._cancel: CancelRun | None = None
        self._after_write: AfterWrite | None = None

    def bind(self, *, create: CreateRun, cancel: CancelRun, after_write: AfterWrite) -> None:
        """Give this part the operations of the parts above it."""
        self._create = create
        self._cancel = cancel
        self._after_write = after_write

    # --- ChildOps: what a step context calls --------------------------------------------

    def prepare(self, workflow: Any, input_value: Any) -> tuple[WorkflowSpec, Any]:
        """The child's spec and stored input (nothing is written).

        Raises:
            WorkflowNotFoundError: no such workflow is registered here.
            ValidationError: not a workflow, or the input is invalid.
        """
        registry = self._rt.registry
        if isinstance(workflow, str):
            spec = registry.get(workflow)
        else:
            given = getattr(workflow, "spec", None)
            if not isinstance(given, WorkflowSpec):
                raise ValidationError(
                    f"a child workflow is a Workflow or a registered name, got {workflow!r}"
                )
            spec = registry.get(given.name, given.version)
        return spec, spec.validate_input(input_value)

    async def start(
        self,
        parent: WorkflowRun,
        step_id: str,
        children: Sequence[tuple[str, Any]],
        *,
        detached: bool,
    ) -> None:
        """Create the children (shielded: a cancel of the step never leaves half a start)."""
        task = asyncio.ensure_future(self._start(parent, step_id, list(children), detached))
        task.add_done_callback(_consume)
        await asyncio.shield(task)

    async def _start(
        self, parent: WorkflowRun, step_id: str, children: list[tuple[str, Any]], detached: bool
    ) -> None:
        rt = self._rt
        assert self._create is not None
        started: list[str] = []
        for child_id, (spec, stored_input) in children:
            try:
                await self._create(
                    spec,
                    stored_input,
                    meta=None,
                    idempotency_key=None,
                    priority=parent.priority,
                    tenant_id=parent.tenant_id,
                    start_at=None,
                    run_id=child_id,
                    parent_run_id=parent.id,
                    parent_step_id=step_id,
                    detached=detached,
                )
            except ConflictError:
                # This step attempt ran before (a crash): keep the child it started.
                existing = await rt.io.get(child_id)
                if existing is None or existing.parent_run_id != parent.id:
                    raise InvalidStateError(
                        f"child run id {child_id!r} is taken by another run", run_id=parent.id
                    ) from None
                started.append(child_id)
                continue
            started.append(child_id)
            if rt.events.listens("workflow:child-started"):
                await rt.events.emit(
                    "workflow:child-started",
                    run=parent,
                    step_id=step_id,
                    data={"child_run_id": child_id, "workflow_id": spec.name, "detached": detached},
                )
        if detached or not started:
            return
        current = await rt.io.get(parent.id)
        if current is None or current.status == RunStatus.CANCELLED:
            for child_id in started:
                await self._cancel_quietly(child_id, f"parent run {parent.id!r} was cancelled")

    async def check_children(self, parent: WorkflowRun, ids: Sequence[str]) -> None:
        """Raise ``ValidationError`` unless every id is a child of ``parent``."""
        found = await self._read(parent.id, ids)
        for child_id in ids:
            if child_id not in found:
                raise ValidationError(
                    f"join: {child_id!r} is not a child run of run {parent.id!r}",
                    run_id=parent.id,
                )

    def join_wait(
        self,
        parent: WorkflowRun,
        ids: Sequence[str],
        mode: str,
        deadline: Any,
        *,
        owned: bool,
    ) -> WaitState:
        """The join's wait, due at the parent workflow's next re-check."""
        rt = self._rt
        spec = rt.registry.for_run(parent)
        recheck = spec.join_recheck if spec is not None else JOIN_RECHECK
        at = rt.clock.now() + timedelta(seconds=recheck)
        return join_wait(ids, mode, deadline=deadline, owned=owned, recheck_at=at)

    async def _read(self, parent_id: str, ids: Sequence[str]) -> dict[str, WorkflowRun]:
        page = await self._rt.io.find(
            RunQuery(parent_run_id=parent_id, run_ids=list(ids), limit=None)
        )
        return {run.id: run for run in page.items}

    # --- the executor: a join suspended, or a joining parent claimed ---------------------

    async def suspended(self, run: WorkflowRun) -> None:
        """A step just stored its join: wake the parent if its children already decided it."""
        if run.status != RunStatus.WAITING or run.wait is None or run.wait.kind != "children":
            return
        join = Join.of(run.wait)
        if decide(join, await self._read(run.id, join.ids)).kind != "wait":
            await self._wake(run.id, None)

    async def settle(self, state: RunState, idx: int) -> bool:
        """Decide the claimed parent's join on its children as stored. True to go on."""
        rt = self._rt
        for _ in range(_ATTEMPTS):
            run = state.run
            if run.status != RunStatus.WAITING or run.wait is None or run.wait.kind != "children":
                return True
            join = Join.of(run.wait)
            decision = decide(join, await self._read(run.id, join.ids))
            if decision.kind == "done":
                return await self._complete(state, idx, decision)
            if decision.kind == "failed":
                cid = decision.child_id or "?"
                why = (decision.child_error or {}).get("message", decision.child_status)
                error = ChildWorkflowError(
                    f"child run {cid!r} {decision.child_status}: {why}",
                    child_run_id=cid,
                    child_error=decision.child_error,
                    run_id=run.id,
                    step_id=run.steps[idx].step_id,
                )
                return await self._fail(state, idx, error, decision.losers)
            now = rt.clock.now()
            if join.deadline is not None and now >= join.deadline:
                children = await self._read(run.id, join.ids)
                losers = tuple(
                    c.id for c in children.values() if not c.is_terminal and not c.detached
                )
                timeout = StepTimeoutError(
                    f"step {run.steps[idx].step_id!r}: its join on {len(join.ids)} child run(s) "
                    "timed out",
                    run_id=run.id,
                    step_id=run.steps[idx].step_id,
                )
                return await self._fail(state, idx, timeout, losers if join.owned else ())
            spec = state.spec
            next_at = now + timedelta(seconds=spec.join_recheck)
            if join.deadline is not None:
                next_at = min(next_at, join.deadline)
            build = self._release(run.revision, next_at)

            try:
                released = await commit(rt, state, build)
            except _Changed as changed:
                state.run = changed.run  # a child woke it meanwhile (or a cancel): look again
                continue
            rt.note_due(released)
            return False
        return False  # kept changing: keep the lease until it expires, as on any stall

    def _release(self, seen: int, next_at: Any) -> Callable[[WorkflowRun], Patch]:
        def build(r: WorkflowRun) -> Patch:
            if r.revision != seen:
                raise _Changed(r)
            return {"lease": None, "next_run_at": next_at, "updated_at": self._rt.clock.now()}

        return build

    async def _complete(self, state: RunState, idx: int, decision: Decision) -> bool:
        rt = self._rt
        step_id = state.run.steps[idx].step_id

        def build(r: WorkflowRun) -> Patch | None:
            if r.status != RunStatus.WAITING or r.wait is None or r.wait.kind != "children":
                return None
            return self._outcomes.advance(r, idx, output=decision.output)

        step = state.run.steps[idx]
        try:
            run = await commit(rt, state, build, step_id)
        except Refused as refused:
            started = step.started_at or rt.clock.now()
            going = await self._outcomes.refused(state, idx, refused, started, step.attempts)
            await self._cancel_all(decision.losers, state.run.id)
            return going
        await rt.events.emit("step:completed", run=run, step_id=step_id, data=decision.output)
        await rt.events.ended(run)
        await self._cancel_all(decision.losers, run.id)
        return goes_on(run)

    async def _fail(
        self, state: RunState, idx: int, error: WorkflowError, losers: Sequence[str]
    ) -> bool:
        step = state.run.steps[idx]
        started = step.started_at or self._rt.clock.now()
        going = await self._outcomes.failed(state, idx, error, started, max(step.attempts, 1))
        await self._cancel_all(losers, state.run.id)
        return going

    # --- ends: wake the parent, cascade a cancel -------------------------------------------

    async def on_end(self, run: WorkflowRun) -> None:
        """A run ended here: wake its waiting parent; a cancelled run cancels its children."""
        try:
            if run.parent_run_id is not None:
                await self._wake(run.parent_run_id, run.id)
            if run.status == RunStatus.CANCELLED:
                await self._cascade(run)
        except Exception as exc:  # the end is stored; a lost wake-up only delays the parent
            log.warning("run %s: after its end: %s", run.id, exc)
            await self._rt.events.emit("engine:error", run_id=run.id, error=exc)

    async def _wake(self, parent_id: str, child_id: str | None) -> None:
        """Make a parent joining ``child_id`` due now (leased here when this worker can run it)."""
        rt = self._rt
        for _ in range(_ATTEMPTS):
            parent = await rt.io.get(parent_id)
            if (
                parent is None
                or parent.status != RunStatus.WAITING
                or parent.wait is None
                or parent.wait.kind != "children"
                or (child_id is not None and child_id not in Join.of(parent.wait).ids)
            ):
                return
            now = rt.clock.now()
            if (
                parent.lease is None
                and parent.next_run_at is not None
                and parent.next_run_at <= now
            ):
                return  # due already: whoever claims it reads this child's end
            patch: Patch = {"next_run_at": now, "updated_at": now}
            lease = rt.local_lease(parent) if parent.lease is None else None
            if lease is not None:
                patch["lease"] = lease
            try:
                woken = await rt.io.transition(parent.id, parent.revision, patch)
            except ConflictError:
                await asyncio.sleep(0)
                continue
            except WorkflowNotFoundError:
                return
            if self._after_write is not None:
                await self._after_write(woken)
            return

    async def _cascade(self, run: WorkflowRun) -> None:
        cursor: str | None = None
        while True:
            page = await self._rt.io.find(
                RunQuery(
                    parent_run_id=run.id,
                    status=tuple(ACTIVE_STATUSES),
                    limit=_PAGE,
                    cursor=cursor,
                )
            )
            for child in page.items:
                if not child.detached:
                    await self._cancel_quietly(child.id, f"parent run {run.id!r} was cancelled")
            cursor = page.next_cursor
            if cursor is None:
                return

    async def _cancel_all(self, ids: Sequence[str], parent_id: str) -> None:
        for child_id in ids:
            await self._cancel_quietly(child_id, f"the join of parent run {parent_id!r} is over")

    async def _cancel_quietly(self, run_id: str, reason: str) -> None:
        assert self._cancel is not None
        try:
            await self._cancel(run_id, reason)
        except (InvalidStateError, WorkflowNotFoundError):
            pass  # ended meanwhile
