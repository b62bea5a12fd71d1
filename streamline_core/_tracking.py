"""Counting in-flight store calls, so a fake clock can wait for them before moving time.

Model layer: imports nothing of streamline_core.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

__all__ = ["IOTracker", "TrackedStore"]


class IOTracker:
    """How many store calls and thread-run handlers are in flight."""

    def __init__(self) -> None:
        self.pending = 0

    async def settle(self, limit: float = 0.5) -> bool:
        """Wait (real time, at most ``limit`` s) until nothing is in flight.

        Returns True when it waited and everything in flight finished (so the
        caller should let the loop run again); False when nothing was in
        flight, or when a call is still hanging after ``limit`` (a store that
        never answers is a test's own business, not something to wait out).
        """
        if not self.pending:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while self.pending and loop.time() < deadline:
            await asyncio.sleep(0.0005)
        return not self.pending


class TrackedStore:
    """A store proxy counting calls in flight (used only under clocks that settle)."""

    def __init__(self, inner: Any, tracker: IOTracker) -> None:
        self._inner = inner
        self._tracker = tracker

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        tracker = self._tracker

        async def call(*args: Any, **kwargs: Any) -> Any:
            tracker.pending += 1
            try:
                return await attr(*args, **kwargs)
            finally:
                tracker.pending -= 1

        return call
