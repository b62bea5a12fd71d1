"""``Delivery``: events sent to runs — ``emit_event`` to every waiting run, or to one.

Parts layer: imports the runtime, reads, the client CAS loop, control (which
completes a waiting step), triggers and the dispatcher. A broadcast resumes
the runs waiting on the name and is never buffered, then cancels the runs
whose ``cancel_on`` it matches and starts the workflows it ``trigger``s (see
:mod:`~streamline_core._runtime.triggers`); a targeted event to a run that
does not wait for it yet is kept in the run's mailbox for a later
``ctx.wait_for``, and neither cancels nor starts anything.

``emit_event`` returns how many runs it *resumed*; runs a trigger started are
not counted (find them with ``runs.find(meta={"trigger_event": name})``). The
``idempotency_key`` is the key of each trigger start (keys are per workflow
and tenant), so an event delivered twice with one key starts one run per
triggered workflow while that run is active.
"""

from __future__ import annotations

from typing import Any

import streamline_core._arguments as A
import streamline_core._patches as P
from streamline_core._json import Unstorable, to_json_value
from streamline_core._runtime.commits import Patch, cas
from streamline_core._runtime.control import Control
from streamline_core._runtime.dispatch import Dispatcher
from streamline_core._runtime.reads import Reads
from streamline_core._runtime.runtime import Runtime
from streamline_core._runtime.triggers import Triggers
from streamline_core.errors import ValidationError, WorkflowNotFoundError
from streamline_core.run import RunStatus, WorkflowRun
from streamline_core.store import RunQuery

__all__ = ["Delivery"]

_PAGE = 200


class _Skip(Exception):
    """A delivery does not apply to this run."""


class Delivery:
    """Event delivery for one runtime."""

    def __init__(
        self,
        rt: Runtime,
        reads: Reads,
        control: Control,
        dispatcher: Dispatcher,
        triggers: Triggers,
    ) -> None:
        self._rt = rt
        self._reads = reads
        self._control = control
        self._dispatcher = dispatcher
        self._triggers = triggers

    async def emit_event(
        self, name: str, data: Any, run_id: str | None, idempotency_key: str | None = None
    ) -> int:
        """Deliver event ``name``; how many runs it resumed (see the module docstring).

        Raises:
            ValidationError: a bad name, or data that is not JSON-compatible.
            WorkflowNotFoundError: ``run_id`` is unknown or out of scope.
        """
        if not isinstance(name, str) or not name:
            raise ValidationError("event name must be a non-empty string")
        A.optional_text(idempotency_key, "idempotency_key")
        try:
            stored = to_json_value(data, "event data")
        except Unstorable as exc:
            raise ValidationError(f"event data is not JSON-compatible: {exc}") from None
        if run_id is not None:
            await self._reads.require(run_id)
            return 1 if await self._deliver_to(run_id, name, stored, buffer=True) else 0
        resumed = 0
        cursor: str | None = None
        while True:
            page = await self._rt.io.find(
                RunQuery(
                    waiting_for_event=name,
                    tenant_id=self._rt.tenant_id,
                    sort="created_at",
                    limit=_PAGE,
                    cursor=cursor,
                )
            )
            for run in page.items:
                if await self._deliver_to(run.id, name, stored, buffer=False):
                    resumed += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        await self._triggers.on_broadcast(name, stored, idempotency_key)
        return resumed

    async def _deliver_to(self, run_id: str, name: str, data: Any, *, buffer: bool) -> bool:
        rt = self._rt
        outcome: dict[str, bool] = {}

        def build(run: WorkflowRun) -> Patch:
            outcome.clear()
            if run.is_terminal:
                raise _Skip()
            waiting = (
                run.status == RunStatus.WAITING
                and run.wait is not None
                and run.wait.kind == "event"
                and run.wait.event == name
            )
            if waiting:
                outcome["resumed"] = True
                return self._control.complete_waiting(run, data)
            if not buffer:
                raise _Skip()
            return P.add_to_mailbox(run, name, data, rt.clock.now())

        try:
            run = await cas(rt, self._reads, run_id, None, build)
        except (_Skip, WorkflowNotFoundError):
            return False
        if outcome.get("resumed"):
            await rt.events.emit("workflow:resumed", run=run, data=data)
            await rt.events.ended(run)
            await self._dispatcher.after_client_write(run)
            return True
        return False
