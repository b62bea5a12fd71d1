"""``Heartbeats``: lease renewal for every run executing in this process (one task per engine).

Parts layer: imports the runtime. Every ``lease/3`` the task renews the
leases that no commit refreshed recently. A renewal that fails
``max_heartbeat_failures`` times in a row, that the store refuses (another
worker owns the run), or that gets no answer before the lease runs out on
this worker's clock stops the step: its task is cancelled and ``ctx.signal``
set, before anyone else may take the run. A renewal that reports
``cancelled`` stops it too.

Leases expire by the wall clock (the one the store compares them with), but
the renewal task sleeps on the event loop's monotonic timers, so a step of
the wall clock (an NTP correction) could make every lease look expired to
other workers while their holder sleeps on. Under a real clock a second task
therefore compares the wall clock with each lease every
:data:`WATCH_EVERY` seconds (no I/O), stops at once any step whose lease has
passed, and reports a step of the wall clock against the monotonic one as an
``engine:error``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import LeaseLostError, StoreError, WorkflowError
from streamline_core.run import RunStatus

__all__ = ["Heartbeats", "WATCH_EVERY", "CLOCK_STEP"]

WATCH_EVERY = 0.2
"""Real seconds between two comparisons of the wall clock with the leases held."""
CLOCK_STEP = 1.0
"""A wall clock that moved this many seconds more (or less) than the monotonic one stepped."""


class Heartbeats:
    """The heartbeat task of one engine (started and client engines alike)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self.task: asyncio.Task[None] | None = None
        self.watch: asyncio.Task[None] | None = None
        # A clock that announces its moves (FakeClock) moves only when a test
        # says so, and wakes the renewals in order: nothing to watch.
        self._watched = not callable(getattr(rt.clock, "subscribe", None))

    def ensure_running(self) -> None:
        """Run the heartbeat task (and the lease watch) while anything is in flight."""
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="streamline:heartbeats")
        if self._watched and (self.watch is None or self.watch.done()):
            self.watch = asyncio.create_task(self._watch(), name="streamline:lease-watch")

    def tasks(self) -> list[asyncio.Task[None]]:
        """The running tasks (for a crash simulation to cancel)."""
        return [t for t in (self.task, self.watch) if t is not None]

    async def stop(self) -> None:
        """Stop the heartbeat task and the lease watch."""
        tasks = self.tasks()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.task = self.watch = None

    async def _watch(self) -> None:
        rt = self._rt
        loop = asyncio.get_running_loop()
        wall, mono = rt.clock.now(), loop.time()
        while rt.inflight:
            await asyncio.sleep(WATCH_EVERY)
            now, tick = rt.clock.now(), loop.time()
            step = (now - wall).total_seconds() - (tick - mono)
            wall, mono = now, tick
            if abs(step) >= CLOCK_STEP:
                await rt.events.emit(
                    "engine:error",
                    error=ClockStepError(
                        f"the wall clock stepped {step:+.1f} s against the monotonic clock; "
                        "leases are judged by the wall clock, so steps whose lease has passed "
                        "are stopped"
                    ),
                )
            for run_id, state in list(rt.inflight.items()):
                if state.task is None or state.task.done() or now < state.lease_expires:
                    continue
                state.interrupt("lease_lost")
                await rt.events.emit(
                    "engine:error",
                    run_id=run_id,
                    step_id=state.run.current_step_id,
                    error=LeaseLostError(
                        f"run {run_id!r}: its lease passed at {state.lease_expires.isoformat()} "
                        f"by the wall clock (now {now.isoformat()}) before it was renewed; the "
                        "step is stopped, another worker may take the run over",
                        run_id=run_id,
                    ),
                )

    async def beat_now(self, run_id: str) -> None:
        """Renew the lease on ``run_id`` now (``ctx.heartbeat()``)."""
        rt = self._rt
        state = rt.inflight.get(run_id)
        if state is None:
            return
        now = rt.clock.now()
        try:
            status = await rt.io.heartbeat(run_id, rt.worker_id, now, rt.lease)
        except LeaseLostError:
            state.interrupt("lease_lost")
            return
        state.lease_expires = now + timedelta(seconds=rt.lease)
        if status == RunStatus.CANCELLED:
            state.interrupt("cancelled")

    async def _run(self) -> None:
        rt = self._rt
        period = rt.lease / 3
        while rt.inflight:
            await rt.clock.sleep(period)
            now = rt.clock.now()
            for run_id, state in list(rt.inflight.items()):
                if state.task is None or state.task.done():
                    continue
                remaining = (state.lease_expires - now).total_seconds()
                if remaining > rt.lease - period:
                    continue  # a commit refreshed it recently
                try:
                    status = await self._beat(run_id, now, remaining)
                except _Unanswered:
                    # The store did not answer before the lease ran out on our
                    # clock: someone else may take the run now, so stop.
                    state.interrupt("lease_lost")
                    continue
                except LeaseLostError:
                    state.interrupt("lease_lost")
                    continue
                except StoreError as exc:
                    rt.counters.store_errors += 1
                    state.heartbeat_failures += 1
                    await rt.events.emit("scheduler:error", run_id=run_id, error=exc)
                    if (
                        state.heartbeat_failures >= rt.max_heartbeat_failures
                        or rt.clock.now() >= state.lease_expires
                    ):
                        # Stop before anyone else may take the run over.
                        state.interrupt("lease_lost")
                    continue
                state.heartbeat_failures = 0
                state.lease_expires = now + timedelta(seconds=rt.lease)
                if status == RunStatus.CANCELLED:
                    state.interrupt("cancelled")

    async def _beat(self, run_id: str, now: datetime, remaining: float) -> RunStatus:
        """One heartbeat, given up when the lease expires first (a hung store)."""
        rt = self._rt
        beat = asyncio.ensure_future(rt.io.heartbeat(run_id, rt.worker_id, now, rt.lease))
        expiry = asyncio.ensure_future(rt.clock.sleep(max(0.0, remaining)))
        try:
            await asyncio.wait({beat, expiry}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            expiry.cancel()
        if not beat.done():
            beat.cancel()
            raise _Unanswered()
        return beat.result()


class ClockStepError(WorkflowError):
    """The wall clock moved against the monotonic clock (reported, never raised)."""


class _Unanswered(Exception):
    """A heartbeat got no answer before the lease expired."""
