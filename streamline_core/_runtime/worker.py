"""``Worker``: the claim loop of a started engine — claim due runs, wake for near-due timers.

Parts layer: imports the runtime and the dispatcher.

Work is found three ways: immediately when something local becomes runnable
(``wake``), on in-process timers for near-due sleeps and retries this process
scheduled (a bounded heap of instants, no per-run tasks), and otherwise by
adaptive polling (the ``streamline_poll_delay`` hook). All waiting goes
through the engine's clock, so a fake clock drives it in tests.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from streamline_core._runtime.dispatch import Dispatcher
from streamline_core._runtime.runtime import Runtime
from streamline_core._runtime.sweeper import Sweeper
from streamline_core.errors import DataCorruptionError, StoreError

__all__ = ["Worker"]

log = logging.getLogger("streamline.worker")

# Timers are instants in one heap, capped: beyond the cap, polling finds due runs.
MAX_TIMERS = 10_000


class Worker:
    """The background tasks of a started engine."""

    def __init__(
        self,
        rt: Runtime,
        dispatcher: Dispatcher,
        min_poll_interval: float,
        max_poll_interval: float,
    ) -> None:
        self._rt = rt
        self._dispatcher = dispatcher
        self.min_poll_interval = min_poll_interval
        self.max_poll_interval = max_poll_interval
        self._wake = asyncio.Event()
        self._timers: list[datetime] = []
        self._loop_task: asyncio.Task[None] | None = None
        self._sweep_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._unsubscribe: Callable[[], None] | None = None
        self._listen: Callable[[float], Awaitable[bool]] | None = None
        self.idle_polls = 0
        self.store_failures = 0
        self.poll_delay = 0.0

    def start(self) -> None:
        """Start the claim loop."""
        # A clock that announces its moves (FakeClock) replaces idle polling:
        # the worker polls each time time moves instead of every poll interval.
        subscribe = getattr(self._rt.clock, "subscribe", None)
        self._unsubscribe = subscribe(self.wake) if callable(subscribe) else None
        # A store that can tell when runs become due (the optional Store
        # operation ``wait_for_work``: LISTEN/NOTIFY, change streams) cuts an
        # idle worker's pickup from a poll interval to a round trip.
        listen = getattr(self._rt.io, "wait_for_work", None)
        self._listen = listen if callable(listen) and self._unsubscribe is None else None
        self._loop_task = asyncio.create_task(self._run(), name="streamline:worker")
        if self._rt.retention is not None:
            self._sweep_task = asyncio.create_task(
                Sweeper(self._rt).run(), name="streamline:retention"
            )

    async def stop(self) -> None:
        """Stop claiming (in-flight runs are the dispatcher's business)."""
        self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._wake.set()
        for task in (self._loop_task, self._sweep_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def abandon(self) -> list[asyncio.Task[None]]:
        """Stop listening to the clock; the loop task, for a crash simulation to cancel."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        return [t for t in (self._loop_task, self._sweep_task) if t is not None]

    def gauges(self) -> dict[str, float]:
        """The loop's gauges for ``engine.stats()``: current poll delay (s) and idle polls."""
        delay = self.poll_delay if math.isfinite(self.poll_delay) else 0.0
        return {"poll_delay": delay, "idle_polls": self.idle_polls}

    def wake(self) -> None:
        """Claim now (something became runnable or a slot freed)."""
        self._wake.set()

    def add_timer(self, at: datetime) -> None:
        """Wake at ``at`` (a sleep or retry this process scheduled)."""
        now = self._rt.clock.now()
        if at <= now:
            self._wake.set()
        elif len(self._timers) < MAX_TIMERS:
            heapq.heappush(self._timers, at)
            self._wake.set()  # re-evaluate the sleep so the new timer is honoured

    # --- claiming ------------------------------------------------------------------

    async def _claim_once(self) -> int:
        rt = self._rt
        free = rt.free_slots
        plain, limited = rt.registry.claim_sets()
        if free <= 0 or not (plain or limited):
            return 0
        claimed = 0
        # Flow-controlled workflows go through the store's claim_limited (which
        # enforces their slots and rate windows); the plain claim never sees them.
        if limited:
            claimed += await self._claim_with("claim_limited", free, limited)
        if plain and rt.free_slots > 0:
            claimed += await self._claim_with("claim", rt.free_slots, plain)
        return claimed

    async def _claim_with(self, op: str, free: int, registered: dict[str, tuple[str, ...]]) -> int:
        rt = self._rt
        try:
            runs = await getattr(rt.io, op)(
                rt.worker_id, rt.clock.now(), rt.lease, free, registered, rt.tenant_id
            )
        except DataCorruptionError as exc:
            await rt.events.emit("engine:error", run_id=exc.run_id, error=exc)
            runs = list(getattr(exc, "claimed", None) or [])
        except StoreError as exc:
            self.store_failures += 1
            rt.counters.store_errors += 1
            await rt.events.emit("scheduler:error", error=exc)
            return 0
        self.store_failures = 0
        await self._dispatcher.take_claimed(runs)
        return len(runs)

    async def _run(self) -> None:
        rt = self._rt
        while not self._stopping:
            self._wake.clear()
            try:
                claimed = await self._claim_once()
            except Exception as exc:  # never let the loop die
                log.exception("worker loop failed")
                await rt.events.emit("scheduler:error", error=exc)
                claimed = 0
            self.idle_polls = 0 if claimed else self.idle_polls + 1
            if claimed and rt.free_slots > 0:
                continue
            delay = rt.plugins.poll_delay(
                {
                    "claimed": claimed,
                    "idle_polls": self.idle_polls,
                    "in_flight": len(rt.inflight),
                    "free_slots": rt.free_slots,
                    "min_poll_interval": self.min_poll_interval,
                    "max_poll_interval": self.max_poll_interval,
                    "store_failures": self.store_failures,
                }
            )
            if self.store_failures:
                # Circuit breaker: a failing store is retried with exponential backoff.
                delay = max(delay, min(30.0, self.min_poll_interval * 2**self.store_failures))
            elif self._unsubscribe is not None:
                delay = float("inf")  # the clock wakes us whenever it moves
            self.poll_delay = delay
            now = rt.clock.now()
            while self._timers and self._timers[0] <= now:
                heapq.heappop(self._timers)
                delay = 0.0
            if self._timers:
                delay = min(delay, (self._timers[0] - now).total_seconds())
            if delay <= 0 or self._wake.is_set():
                await asyncio.sleep(0)
                continue
            if delay == float("inf"):
                await self._wake.wait()
                continue
            await self._sleep_or_wake(delay)

    async def _sleep_or_wake(self, delay: float) -> None:
        sleeper = asyncio.ensure_future(self._rt.clock.sleep(delay))
        waker = asyncio.ensure_future(self._wake.wait())
        waits: set[asyncio.Future[Any]] = {sleeper, waker}
        if self._listen is not None:
            waits.add(asyncio.ensure_future(self._listen(delay)))
        try:
            while waits:
                done, waits = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                # A listener that failed (its store is down) is no reason to
                # claim now: keep sleeping; the claim loop reports outages.
                if any(t is not sleeper and t is not waker and t.exception() for t in done):
                    continue
                break
        finally:
            for t in waits:
                t.cancel()
