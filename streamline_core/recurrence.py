"""Recurrence: what a schedule hands to ``streamline_next_occurrence``; the built-in calculators.

Plugins layer (beside ``retry``): imports the hook markers, ``zoneinfo`` and
``cronsim``. The built-in cron and interval calculators are plugins
registered ``trylast``, so a user plugin that knows a shape answers first and
any plugin can add a shape of its own (RRULE, business days) through
:attr:`Recurrence.spec`.

Cron expressions are parsed and iterated by ``cronsim`` (the scheduler of
Healthchecks.io): it takes aware datetimes and applies cron's own DST rules
— a wall time skipped by a spring-forward gap fires at the first instant
after the gap, an ambiguous wall time fires once, at its first occurrence —
which are the rules API.md fixes. Intervals are aligned on the Unix epoch
(UTC), so every worker computes the same instants without stored state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from streamline_core.errors import ValidationError
from streamline_core.hooks import hookimpl

__all__ = ["Recurrence", "zone", "check_cron", "CronCalculator", "IntervalCalculator"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Recurrence:
    """What ``streamline_next_occurrence`` receives as ``schedule``.

    Exactly one of ``cron``, ``every`` and ``spec`` is set.

    Attributes:
        name: The schedule's name.
        cron: A cron expression (5 fields; cronsim's extensions such as ``L`` too).
        every: An interval in seconds, aligned on the Unix epoch.
        spec: Any other JSON value, for a plugin's own shape.
        timezone: The IANA zone cron fields (and plugin shapes) are read in.
    """

    name: str
    cron: str | None = None
    every: float | None = None
    spec: Any = None
    timezone: str = "UTC"

    def describe(self) -> Any:
        """The recurrence as people read it: the cron string, ``"every 300s"``, or the spec."""
        if self.cron is not None:
            return self.cron
        if self.every is not None:
            return f"every {self.every:g}s"
        return self.spec


def zone(name: Any) -> ZoneInfo:
    """The IANA zone ``name``.

    Raises:
        ValidationError: not a string, or no such zone.
    """
    if not isinstance(name, str) or not name:
        raise ValidationError(f"timezone must be an IANA zone name, got {name!r:.80}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {name!r:.80}") from None


def check_cron(expr: Any) -> str:
    """``expr`` if cronsim accepts it.

    Raises:
        ValidationError: not a string, or not a valid cron expression.
    """
    if not isinstance(expr, str) or not expr.strip():
        raise ValidationError(f"cron must be a cron expression string, got {expr!r:.80}")
    try:
        CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
    except (CronSimError, ValueError, IndexError) as exc:
        raise ValidationError(f"bad cron expression {expr!r:.80}: {exc}") from None
    return expr


class CronCalculator:
    """Built-in calculator for ``cron=`` schedules, in the schedule's time zone."""

    @hookimpl(trylast=True)
    def streamline_next_occurrence(self, schedule: Any, after: datetime) -> datetime | None:
        """The first cron instant strictly after ``after``, as aware UTC."""
        expr = getattr(schedule, "cron", None)
        if not isinstance(schedule, Recurrence) or expr is None:
            return None
        local = after.astimezone(zone(schedule.timezone))
        try:
            nxt = next(CronSim(expr, local))
        except StopIteration:  # an expression that never matches again
            return None
        return nxt.astimezone(UTC)


class IntervalCalculator:
    """Built-in calculator for ``every=`` schedules: epoch-aligned multiples of the interval."""

    @hookimpl(trylast=True)
    def streamline_next_occurrence(self, schedule: Any, after: datetime) -> datetime | None:
        """The first multiple of ``every`` since the epoch strictly after ``after``."""
        every = getattr(schedule, "every", None)
        if not isinstance(schedule, Recurrence) or every is None:
            return None
        # Whole microseconds keep the arithmetic exact (no float drift over years).
        step = round(every * 1_000_000)
        elapsed = (after - _EPOCH) // timedelta(microseconds=1)
        return _EPOCH + timedelta(microseconds=(elapsed // step + 1) * step)
