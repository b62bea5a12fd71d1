"""``Heartbeats``: lease renewal for every run executing in this process (one task per engine).

Parts layer: imports the runtime. Every ``lease/3`` the task renews the
leases that no commit refreshed recently. A renewal that fails
``max_heartbeat_failures`` times in a row, that the store refuses (another
worker owns the run), or that gets no answer before the lease runs out on
this worker's clock stops the step: its task is cancelled and ``ctx.signal``
set, before anyone else may take the run. A renewal that reports
``cancelled`` stops it too.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import LeaseLostError, StoreError
from streamline_core.run import RunStatus

__all__ = ["Heartbeats"]


class Heartbeats:
    """The heartbeat task of one engine (started and client engines alike)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self.task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        """Run the heartbeat task while anything is in flight."""
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="streamline:heartbeats")

    async def stop(self) -> None:
        """Stop the heartbeat task."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

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


class _Unanswered(Exception):
    """A heartbeat got no answer before the lease expired."""
