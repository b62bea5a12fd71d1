"""``FakeClock``: time that moves only when a test says so.

``await clock.advance(seconds)`` moves time forward and wakes, in deadline
order, every task sleeping on the clock whose deadline has passed, giving
each woken task a chance to run (and to schedule new sleeps, which are woken
too when they fall inside the advanced window). Nothing waits for real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]

_DEFAULT_START = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    """A controllable :class:`~streamline_core.clock.Clock` for tests.

    Args:
        start: The initial time (aware; naive values are taken as UTC).
            Defaults to 2030-01-01T00:00:00Z.
    """

    def __init__(self, start: datetime | None = None) -> None:
        start = start or _DEFAULT_START
        self._now = start if start.tzinfo else start.replace(tzinfo=UTC)
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._subscribers: list[Callable[[], None]] = []
        self._settlers: list[Callable[[], Awaitable[bool]]] = []

    def now(self) -> datetime:
        """The fake current time."""
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Sleep until the clock is advanced ``seconds`` past now (0 or less: just yield)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._sleepers, (self._now + timedelta(seconds=seconds), next(self._seq), fut)
        )
        await fut

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` whenever time moves; returns an unsubscribe function.

        Engines subscribe so that, under a fake clock, they poll the store each
        time the test moves time instead of sleeping through a poll interval:
        ``advance(86400 * 30)`` costs a few polls, not millions.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def add_settler(self, settler: Callable[[], Awaitable[bool]]) -> Callable[[], None]:
        """Have :meth:`settle` also wait for ``settler()``; returns a remover.

        A settler awaits work that runs outside the event loop (store threads,
        sockets, handlers in threads) and returns whether it had to wait.
        Engines add one, so ``advance`` never moves time while a commit is
        still on its way to the database.
        """
        self._settlers.append(settler)

        def remove() -> None:
            if settler in self._settlers:
                self._settlers.remove(settler)

        return remove

    def _moved(self) -> None:
        for callback in list(self._subscribers):
            callback()

    @property
    def pending(self) -> int:
        """How many tasks are sleeping on this clock."""
        return sum(1 for *_, f in self._sleepers if not f.done())

    async def advance(self, seconds: float = 0.0) -> None:
        """Move time forward by ``seconds``, waking due sleepers in order.

        Between wake-ups the event loop runs until it goes quiet, so work the
        woken tasks start (claims, steps, commits) happens "at" that instant.
        """
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        target = self._now + timedelta(seconds=seconds)
        await self.settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            if fut.done():
                continue
            self._now = max(self._now, deadline)
            fut.set_result(None)
            self._moved()
            await self.settle()
        self._now = target
        self._moved()
        await self.settle()

    async def settle(self, rounds: int = 20) -> None:
        """Let ready work run before time moves on.

        Yields to the event loop ``rounds`` times, then waits for every
        settler (engines register one for their store I/O), and repeats
        until nothing was pending.
        """
        for _ in range(100):
            for _ in range(rounds):
                await asyncio.sleep(0)
            busy = False
            for settler in list(self._settlers):
                if await settler():
                    busy = True
            if not busy:
                return
