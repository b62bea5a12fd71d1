"""``Creation``: a new run — its input, meta and context made storable, stored, then started.

Parts layer: imports the runtime and the dispatcher. The caller's input goes
one way: the workflow spec validates it and builds the first context, this
part assembles the run and creates it (leased to this worker when it can run
it now, so the first step starts with no poll and no extra write), and the
dispatcher drives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from streamline_core._json import Unstorable, to_json_value
from streamline_core._runtime.debouncing import create_debounced
from streamline_core._runtime.dispatch import Dispatcher
from streamline_core._runtime.runtime import Runtime
from streamline_core._runtime.slots import run_limits
from streamline_core.errors import ValidationError
from streamline_core.run import Lease, RunStatus, StepState, StepStatus, WorkflowRun, new_run_id
from streamline_core.workflow_spec import WorkflowSpec

__all__ = ["Creation", "Seed"]


@dataclass(frozen=True)
class Seed:
    """What a fork starts from instead of a fresh run: its context, step records and cursor."""

    context: dict[str, Any]
    steps: list[StepState]
    cursor: str


class Creation:
    """Creates runs for one runtime."""

    def __init__(self, rt: Runtime, dispatcher: Dispatcher) -> None:
        self._rt = rt
        self._dispatcher = dispatcher

    async def create(
        self,
        spec: WorkflowSpec,
        input_value: Any,
        *,
        meta: Mapping[str, Any] | None,
        idempotency_key: str | None,
        priority: int,
        tenant_id: str | None,
        start_at: datetime | None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        parent_step_id: str | None = None,
        detached: bool = False,
        seed: Seed | None = None,
    ) -> WorkflowRun:
        """Store a new run of ``spec`` (or return the active run holding ``idempotency_key``).

        Arguments are checked by the caller; the input, meta and context are
        checked here. A given ``run_id`` (derived by schedules) replaces the
        random one; when that id is already stored the store's ``ConflictError``
        propagates, so a derived id is created once (child runs rely on it). A workflow with a
        ``Debounce`` (and no derived id) folds the start into its bucket's
        pending run (:mod:`~streamline_core._runtime.debouncing`), whose key
        supersedes ``idempotency_key``. A ``seed`` (a fork) gives the context,
        step records and cursor instead of the first step of a fresh context.

        Raises:
            ValidationError: input, meta or context is invalid; nothing is stored.
        """
        rt = self._rt
        stored_input = spec.validate_input(input_value)
        try:
            stored_meta = to_json_value(dict(meta or {}), "meta")
        except (Unstorable, TypeError, ValueError) as exc:
            raise ValidationError(f"meta is not JSON-compatible: {exc}") from None
        debounce = spec.debounce if run_id is None and seed is None else None
        if debounce is not None:
            idempotency_key = debounce.bucket(spec.input_for(stored_input))
        context = seed.context if seed is not None else await spec.build_context(stored_input)
        limits = run_limits(spec, spec.input_for(stored_input)) if spec.limited else {}
        now = rt.clock.now()
        due = now if start_at is None or start_at <= now else start_at
        if debounce is not None:
            due = max(due, now + timedelta(seconds=debounce.period))
        # A flow-controlled run is leased only by the store's claim_limited: the
        # local worker claims it at once (add_timer below wakes it).
        local = due == now and rt.can_take_locally() and not spec.limited
        first = spec.steps[0].step_id if seed is None else seed.cursor
        steps = (
            [StepState(step_id=s.step_id) for s in spec.steps] if seed is None else [*seed.steps]
        )
        if local:
            at = 0 if seed is None else spec.step_ids.index(first)
            steps[at] = StepState(step_id=first, status=StepStatus.RUNNING, started_at=now)
        run = WorkflowRun(
            id=run_id or new_run_id(now),
            workflow_id=spec.name,
            workflow_version=spec.version,
            tenant_id=tenant_id,
            parent_run_id=parent_run_id,
            parent_step_id=parent_step_id,
            detached=detached,
            status=RunStatus.RUNNING,
            current_step_id=first,
            steps=steps,
            context=context,
            input=stored_input,
            next_run_at=due,
            priority=priority,
            lease=Lease(**rt.lease_value(now)) if local else None,
            idempotency_key=idempotency_key,
            meta=stored_meta,
            **limits,
            created_at=now,
            updated_at=now,
        )
        if debounce is None:
            stored, created = await rt.io.create(run)
        else:
            stored, created = await create_debounced(rt, run, debounce)
        if not created:
            if debounce is not None and rt.worker is not None and stored.next_run_at is not None:
                rt.worker.add_timer(stored.next_run_at)
            return stored
        await rt.events.emit("workflow:started", run=stored, data={"input": stored_input})
        if local:
            self._dispatcher.dispatch(stored)
        elif rt.worker is not None:
            rt.worker.add_timer(due)
        return stored
