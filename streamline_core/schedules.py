"""``engine.schedules`` and ``engine.schedule(...)``: the façade over recurring schedules.

Façade layer: imports the runtime's client, the schedule part and the
``Workflow`` façade (to accept one as a target). It checks arguments and
delegates to :class:`~streamline_core._runtime.schedules.ScheduleBook`.
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta
from typing import Any, get_args

import streamline_core._arguments as A
from streamline_core._durations import seconds
from streamline_core._json import Unstorable, to_json_value
from streamline_core._runtime.client import Client
from streamline_core._runtime.schedules import ScheduleBook
from streamline_core.errors import ValidationError
from streamline_core.recurrence import check_cron, zone
from streamline_core.run import WorkflowRun
from streamline_core.schedule_info import CatchUp, Overlap, ScheduleInfo, ScheduleState
from streamline_core.workflow import Workflow

__all__ = ["Schedules"]


def _choice(value: Any, what: str, allowed: tuple[str, ...]) -> Any:
    if value not in allowed:
        raise ValidationError(f"{what} must be one of {list(allowed)}, got {value!r:.80}")
    return value


class Schedules:
    """Recurring schedules of one engine's store (tenant-scoped when the engine is).

    ``list``, ``get``, ``pause``, ``unpause`` and ``delete`` work from the store
    alone; ``trigger`` and ``backfill`` start runs, so the schedule's workflow
    must be registered on this engine.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        rt = client.rt
        self._book = ScheduleBook(rt, client.reads, client.creation, client.control)

    def declare(
        self,
        name: str,
        workflow: Workflow | str,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        spec: Any = None,
        timezone: str = "UTC",
        input: Any = None,
        overlap: Overlap = "skip",
        catch_up: CatchUp = "latest",
        catch_up_window: float | timedelta | None = None,
    ) -> None:
        """Declare schedule ``name`` (``engine.schedule``); a worker stores it as it starts.

        A schedule already in the store is updated with these settings and keeps
        its pause and progress, so a paused schedule stays paused.

        Args:
            name: Unique (per tenant) schedule name.
            workflow: The ``Workflow`` (or registered name) each occurrence starts.
            cron: A cron expression, read in ``timezone``.
            every: An interval (seconds or timedelta), aligned on the Unix epoch.
            spec: Another shape, for a ``streamline_next_occurrence`` plugin.
            timezone: IANA zone name.
            input: JSON input of every run.
            overlap: ``"skip"`` (default) fires nothing while the previous run is
                active, ``"allow"`` fires anyway, ``"cancel_previous"`` cancels it first.
            catch_up: After downtime, start ``"none"``, the ``"latest"`` (default) or
                ``"all"`` of the missed occurrences.
            catch_up_window: Missed occurrences older than this never start (default: no limit).

        Raises:
            ValidationError: bad name, recurrence, time zone, input or policy.
        """
        A.text(name, "schedule name")
        target = workflow.name if isinstance(workflow, Workflow) else A.text(workflow, "workflow")
        shapes = [s for s in (cron, every, spec) if s is not None]
        if len(shapes) != 1:
            raise ValidationError("a schedule needs exactly one of cron=, every= or spec=")
        zone(timezone)
        every_s = seconds(every, "every") if every is not None else None
        if every_s is not None and every_s < 0.001:
            raise ValidationError(f"every must be at least a millisecond, got {every!r}")
        window = seconds(catch_up_window, "catch_up_window")
        if window is not None and window <= 0:
            raise ValidationError(f"catch_up_window must be positive, got {catch_up_window!r}")
        try:
            stored_input = to_json_value(input, "input")
            stored_spec = to_json_value(spec, "spec")
        except Unstorable as exc:
            raise ValidationError(f"schedule {name!r}: not JSON-compatible: {exc}") from None
        state = ScheduleState(
            name=name,
            workflow=target,
            tenant_id=self._client.rt.tenant_id,
            cron=None if cron is None else check_cron(cron),
            every=every_s,
            spec=stored_spec,
            timezone=timezone,
            input=stored_input,
            overlap=_choice(overlap, "overlap", get_args(Overlap)),
            catch_up=_choice(catch_up, "catch_up", get_args(CatchUp)),
            catch_up_window=window,
            cursor=self._client.rt.clock.now(),
        )
        if self._book.next_after(state, state.cursor) is None:
            raise ValidationError(
                f"schedule {name!r}: no streamline_next_occurrence plugin understands "
                f"{shapes[0]!r:.80}, or it never fires"
            )
        self._book.declare(state)

    async def settle(self) -> None:
        """Wait for declarations a started engine is still writing (``Engine.shutdown``)."""
        await self._book.settle()

    async def store_declared(self) -> None:
        """Write every declared schedule to the store (``Engine.start`` calls this)."""
        await self._book.write_declared()

    async def list(self) -> list[ScheduleInfo]:
        """Every schedule in the store, by name."""
        return await self._book.list()

    async def get(self, name: str) -> ScheduleInfo | None:
        """Schedule ``name``, or ``None``."""
        return await self._book.get(A.text(name, "schedule name"))

    async def pause(self, name: str) -> ScheduleInfo:
        """Fire nothing until :meth:`unpause` (also when code declares it again).

        Raises:
            WorkflowNotFoundError: no such schedule.
        """
        return await self._book.set_paused(A.text(name, "schedule name"), True)

    async def unpause(self, name: str) -> ScheduleInfo:
        """Resume the cadence; occurrences that passed while paused do not fire.

        Raises:
            WorkflowNotFoundError: no such schedule.
        """
        return await self._book.set_paused(A.text(name, "schedule name"), False)

    async def trigger(self, name: str) -> WorkflowRun:
        """Start one run now, outside the cadence (``meta["trigger"] == "manual"``).

        Raises:
            WorkflowNotFoundError: no such schedule, or its workflow is not registered here.
        """
        return await self._book.trigger(A.text(name, "schedule name"))

    async def backfill(
        self, name: str, start: datetime, end: datetime
    ) -> builtins.list[WorkflowRun]:
        """The runs of the occurrences in ``[start, end)``, started unless they exist.

        An occurrence that already has its run (fired on time, or backfilled
        before) returns that run: exactly one run per occurrence.

        Raises:
            WorkflowNotFoundError: no such schedule, or its workflow is not registered here.
            ValidationError: bad range, or more than 10,000 occurrences.
        """
        A.aware_datetime(start, "start")
        A.aware_datetime(end, "end")
        if end <= start:
            raise ValidationError("backfill needs start < end")
        return await self._book.backfill(A.text(name, "schedule name"), start, end)

    async def delete(self, name: str) -> None:
        """Remove the schedule from the store; the runs it started stay.

        Raises:
            WorkflowNotFoundError: no such schedule.
        """
        await self._book.delete(A.text(name, "schedule name"))
