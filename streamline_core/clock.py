"""Time: every time-based decision in the engine reads one injected :class:`Clock`.

Model layer: imports nothing of streamline_core.

Sleep, retry and ``start_at`` timers, wait timeouts, step timeouts, poll
delays, heartbeat cadence and lease expiry all go through ``clock.now()`` and
``clock.sleep()``, so a fake clock (``streamline_testing.FakeClock``) can
move time in tests without anyone waiting for real seconds.

Workers on different hosts are assumed to have clocks synchronised within a
small margin compared to the lease (NTP is plenty for the 30 s default).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "utcnow"]


def utcnow() -> datetime:
    """Current wall-clock time as an aware UTC datetime."""
    return datetime.now(UTC)


@runtime_checkable
class Clock(Protocol):
    """Source of time for an engine."""

    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock: wall time for ``now``, the event loop for ``sleep``."""

    def now(self) -> datetime:
        """Current wall-clock time (aware UTC)."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of real time (0 or less just yields)."""
        await asyncio.sleep(max(0.0, seconds))
