"""``Migration``: moving runs onto another version of their workflow, and forking a run.

Parts layer: imports the runtime, reads, the client CAS loop, the dispatcher
and creation. The decisions are pure (:mod:`streamline_core._migration`);
this part reads, writes each move as one compare-and-set, and lets a worker
pick the moved run up. A fork is a new run through the normal creation path,
so tenant scope, ``workflow:started`` and local dispatch apply as to a start.
"""

from __future__ import annotations

from collections.abc import Mapping

import streamline_core._arguments as A
from streamline_core._migration import check_step_map, fork_steps, live_lease, migration_patch
from streamline_core._runtime.commits import Patch, cas
from streamline_core._runtime.creation import Creation, Seed
from streamline_core._runtime.dispatch import Dispatcher
from streamline_core._runtime.reads import Reads
from streamline_core._runtime.runtime import Runtime
from streamline_core._runtime.slots import run_limits
from streamline_core.errors import (
    ConflictError,
    InvalidStateError,
    StepNotFoundError,
    ValidationError,
    WorkflowNotFoundError,
)
from streamline_core.run import ACTIVE_STATUSES, WorkflowRun
from streamline_core.store import RunQuery
from streamline_core.workflow_spec import WorkflowSpec

__all__ = ["Migration"]

PAGE = 100
"""Runs read per page by a bulk migration."""

_LIMIT_FIELDS = ("concurrency_key", "concurrency_limit", "rate_key", "rate_limit", "rate_period")


class Migration:
    """Version moves and forks for one runtime."""

    def __init__(
        self, rt: Runtime, reads: Reads, dispatcher: Dispatcher, creation: Creation
    ) -> None:
        self._rt = rt
        self._reads = reads
        self._dispatcher = dispatcher
        self._creation = creation

    def _patch(
        self, run: WorkflowRun, spec: WorkflowSpec, step_map: Mapping[str, str] | None
    ) -> Patch:
        mapping = check_step_map(
            step_map, [s.step_id for s in run.steps], spec.step_ids, version=spec.version
        )
        patch = migration_patch(
            run,
            version=spec.version,
            new_ids=spec.step_ids,
            step_map=mapping,
            now=self._rt.clock.now(),
            lease=None,
        )
        # The flow control of the new version: which claim leases the run
        # (claim or claim_limited) follows its keys, so they must be the new ones.
        limits = run_limits(spec, spec.input_for(run.input)) if spec.limited else {}
        for field in _LIMIT_FIELDS:
            if getattr(run, field) != limits.get(field):
                patch[field] = limits.get(field)
        return patch

    async def _moved(self, run: WorkflowRun) -> None:
        """After a move: stop a stale local drive of the old version, let a worker claim it."""
        state = self._rt.inflight.get(run.id)
        if state is not None:
            state.interrupt("migrated")  # its commits are fenced (lease cleared, epoch bumped)
            await state.done.wait()
        await self._dispatcher.after_client_write(run)

    async def migrate_run(
        self, run_id: str, to_version: str, step_map: Mapping[str, str] | None
    ) -> WorkflowRun:
        """Move one run no worker holds onto ``to_version`` (one compare-and-set).

        Raises:
            WorkflowNotFoundError: unknown run (or out of scope), or ``to_version``
                is not registered here.
            InvalidStateError: the run ended, is under a live lease, or is on
                ``to_version`` already.
            ValidationError: a bad ``step_map``, or the cursor has no counterpart.
        """
        run_id = A.run_id(run_id)
        A.text(to_version, "to_version")
        current = await self._reads.require(run_id)
        spec = self._rt.registry.get(current.workflow_id, to_version)
        run = await cas(
            self._rt, self._reads, run_id, None, lambda r: self._patch(r, spec, step_map)
        )
        await self._moved(run)
        return run

    async def migrate_many(
        self,
        workflow_id: str,
        from_version: str,
        to_version: str,
        step_map: Mapping[str, str] | None,
    ) -> int:
        """Move every active run of ``workflow_id`` on ``from_version`` that no worker holds.

        Pages through the runs with ``find``; each move is one compare-and-set.
        A run that changed meanwhile is re-read and tried once more; a leased
        run, and one whose cursor has no counterpart, is left where it is.

        Raises:
            WorkflowNotFoundError: ``to_version`` is not registered here.
            ValidationError: bad arguments or ``step_map``.
        """
        A.text(workflow_id, "workflow_id")
        A.text(from_version, "from_version")
        A.text(to_version, "to_version")
        if from_version == to_version:
            raise ValidationError(f"from_version and to_version are both {to_version!r}")
        spec = self._rt.registry.get(workflow_id, to_version)
        try:
            old = self._rt.registry.get(workflow_id, from_version)
        except WorkflowNotFoundError:
            pass  # not registered here: the map is checked against each run's own steps
        else:
            check_step_map(step_map, old.step_ids, spec.step_ids, version=to_version)
        moved = 0
        cursor: str | None = None
        while True:
            page = await self._reads.find(
                RunQuery(
                    workflow_id=workflow_id,
                    status=tuple(ACTIVE_STATUSES),
                    tenant_id=self._rt.tenant_id,
                    sort="created_at",
                    limit=PAGE,
                    cursor=cursor,
                )
            )
            for run in page.items:
                if run.workflow_version == from_version and await self._move(
                    run, from_version, spec, step_map
                ):
                    moved += 1
            if page.next_cursor is None:
                return moved
            cursor = page.next_cursor

    async def _move(
        self,
        run: WorkflowRun,
        from_version: str,
        spec: WorkflowSpec,
        step_map: Mapping[str, str] | None,
    ) -> bool:
        for _ in range(2):  # the run as listed, then once more as re-read after a conflict
            if (
                run.workflow_version != from_version
                or run.is_terminal
                or live_lease(run, self._rt.clock.now())
            ):
                return False
            check_step_map(
                step_map, [s.step_id for s in run.steps], spec.step_ids, version=spec.version
            )
            try:
                patch = self._patch(run, spec, step_map)
            except (InvalidStateError, ValidationError):
                return False  # compensating, or a cursor with no counterpart: left on its version
            try:
                moved = await self._rt.io.transition(run.id, run.revision, patch)
            except ConflictError:
                fresh = await self._reads.get(run.id)
                if fresh is None:
                    return False
                run = fresh
                continue
            except WorkflowNotFoundError:
                return False  # deleted meanwhile
            await self._moved(moved)
            return True
        return False

    async def fork(
        self,
        spec: WorkflowSpec,
        run_id: str,
        from_step: str,
        step_map: Mapping[str, str] | None,
    ) -> WorkflowRun:
        """A new run of ``spec`` from ``from_step``, seeded with the source run's work so far.

        Raises:
            StepNotFoundError: ``spec`` has no step ``from_step``.
            WorkflowNotFoundError: unknown source run (or out of scope).
            ValidationError: a bad ``step_map``, or input ``spec`` refuses.
        """
        run_id = A.run_id(run_id)
        A.text(from_step, "from_step")
        if from_step not in spec.step_ids:
            raise StepNotFoundError(
                f"workflow {spec.name!r} v{spec.version} has no step {from_step!r} "
                f"(steps: {spec.step_ids})",
                run_id=run_id,
                step_id=from_step,
            )
        source = await self._reads.require(run_id, spec.name)
        mapping = check_step_map(
            step_map, [s.step_id for s in source.steps], spec.step_ids, version=spec.version
        )
        steps = fork_steps(
            source,
            new_ids=spec.step_ids,
            from_step=from_step,
            step_map=mapping,
            now=self._rt.clock.now(),
        )
        return await self._creation.create(
            spec,
            source.input,
            meta={**source.meta, "forked_from": source.id},
            idempotency_key=None,
            priority=source.priority,
            tenant_id=source.tenant_id,
            start_at=None,
            seed=Seed(context=dict(source.context), steps=steps, cursor=from_step),
        )
