"""Schedule records: what a schedule stores (``ScheduleState``), shows and its run ids.

Model layer: imports pydantic only. A schedule is kept in the store as one
run of the internal workflow :data:`SCHEDULE_WORKFLOW`; its context is a
dumped :class:`ScheduleState` and its ``paused`` flag is the schedule's. Run
ids are derived, never random, so every worker, restart and backfill names
the same run for the same occurrence and the store's unique id makes the
second create fail instead of firing twice.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "SCHEDULE_WORKFLOW",
    "Overlap",
    "CatchUp",
    "ScheduleState",
    "ScheduleInfo",
    "schedule_run_id",
    "occurrence_run_id",
    "iso_utc",
]

SCHEDULE_WORKFLOW = "streamline.schedule"
"""The internal workflow whose runs hold schedules."""

Overlap = Literal["skip", "allow", "cancel_previous"]
CatchUp = Literal["none", "latest", "all"]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


def schedule_run_id(name: str, tenant_id: str | None) -> str:
    """The id of the run that holds schedule ``name`` (per tenant)."""
    return f"sched-{_digest('schedule', tenant_id or '', name)}"


def occurrence_run_id(name: str, tenant_id: str | None, at: datetime) -> str:
    """The id of the one run of schedule ``name`` for the occurrence at ``at``."""
    return f"occ-{_digest('occurrence', tenant_id or '', name, iso_utc(at))}"


def iso_utc(at: datetime) -> str:
    """``at`` as ISO 8601 in UTC (``2030-01-01T02:00:00+00:00``), the form stored in meta."""
    return at.astimezone(UTC).isoformat()


class ScheduleState(BaseModel):
    """A schedule's declared configuration and progress, as stored in its run's context.

    Attributes:
        name: The schedule's name.
        workflow: The target workflow's name (its latest registered version runs).
        tenant_id: The tenant its runs belong to.
        cron: Cron expression, when the schedule is a cron schedule.
        every: Interval seconds, when it is an interval schedule.
        spec: A plugin shape's value, otherwise.
        timezone: IANA zone the recurrence is read in.
        input: The input of every run.
        overlap: What an occurrence does while the previous run is still active.
        catch_up: Which missed occurrences fire after downtime.
        catch_up_window: Seconds; missed occurrences older than this never fire.
        cursor: Every occurrence at or before this instant has been handled.
        next_fire_at: The next occurrence the schedule sleeps until.
        last_run_id: The latest run it started (cadence, catch-up or trigger).
    """

    model_config = ConfigDict(extra="ignore")

    name: str
    workflow: str
    tenant_id: str | None = None
    cron: str | None = None
    every: float | None = None
    spec: Any = None
    timezone: str = "UTC"
    input: Any = None
    overlap: Overlap = "skip"
    catch_up: CatchUp = "latest"
    catch_up_window: float | None = None
    cursor: datetime
    next_fire_at: datetime | None = None
    last_run_id: str | None = None

    def declared(self) -> dict[str, Any]:
        """The fields a re-declaration replaces, JSON-dumped."""
        return self.model_dump(mode="json", include=_DECLARED)


# What code declares; the rest (cursor, next fire, last run) is progress a
# re-declaration must keep.
_DECLARED = {
    "name",
    "workflow",
    "tenant_id",
    "cron",
    "every",
    "spec",
    "timezone",
    "input",
    "overlap",
    "catch_up",
    "catch_up_window",
}


class ScheduleInfo(BaseModel):
    """A schedule as ``engine.schedules.list()`` and ``get()`` show it.

    Attributes:
        name: The schedule's name.
        workflow: The workflow it starts.
        spec: The recurrence: a cron string, ``"every 300s"``, or a plugin shape's value.
        timezone: IANA zone of the recurrence.
        paused: Paused schedules fire nothing until unpaused.
        next_fire_at: The next occurrence (``None`` while paused or when it never fires again).
        last_run_id: The latest run it started.
        overlap: ``skip``, ``allow`` or ``cancel_previous``.
        catch_up: ``none``, ``latest`` or ``all``.
        run_id: The id of the internal run that holds the schedule.
    """

    name: str
    workflow: str
    spec: Any
    timezone: str
    paused: bool
    next_fire_at: datetime | None
    last_run_id: str | None
    overlap: Overlap = "skip"
    catch_up: CatchUp = "latest"
    run_id: str | None = None
