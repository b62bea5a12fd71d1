"""A step of the wall clock never leaves two workers executing one run for long.

Leases expire by the wall clock; renewals sleep on monotonic timers. When the
wall clock jumps past a lease (an NTP correction), every worker sees the
lease expired at the same instant, so the holder must stop its step at once
(within a lease-watch tick), not at its next renewal a third of a lease away.
These tests use a real-time clock with an offset the test steps, so they
wait a fraction of a real second.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from streamline_core import Engine, RunStatus, StepContext
from streamline_testing import InMemoryStore


class SteppableClock:
    """Wall time plus an offset a test can step, like a clock that NTP corrects."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def test_a_forward_step_of_the_wall_clock_stops_the_holder_before_a_takeover() -> None:
    async def main() -> None:
        clock = SteppableClock()
        store = InMemoryStore()
        running: dict[str, int] = {"now": 0}
        stopped: list[bool] = []
        stopped_at: list[float] = []
        errors: list[Any] = []

        def long_on(worker_id: str) -> Any:
            async def long(ctx: StepContext) -> str:
                running["now"] += 1
                try:
                    if worker_id == "holder":
                        await asyncio.sleep(3)  # the renewal task sleeps through the jump
                    return f"done by {worker_id}"
                except asyncio.CancelledError:
                    stopped.append(ctx.signal.is_set())
                    stopped_at.append(asyncio.get_running_loop().time())
                    raise
                finally:
                    running["now"] -= 1

            return long

        def engine(worker_id: str) -> Engine:
            e = Engine(
                store,
                clock=clock,  # type: ignore[arg-type]
                worker_id=worker_id,
                lease=30,
                min_poll_interval=0.02,
                max_poll_interval=0.05,
                load_entry_point_plugins=False,
            )
            e.workflow("long", steps={"long": long_on(worker_id)})
            return e

        holder, other = engine("holder"), engine("other")
        holder.on("engine:error")(errors.append)
        async with holder:
            run = await holder.get_workflow("long").start()
            for _ in range(100):
                if running["now"]:
                    break
                await asyncio.sleep(0.01)
            async with other:
                clock.offset += timedelta(seconds=60)  # every 30 s lease now looks expired
                jumped_at = asyncio.get_running_loop().time()
                done = await other.get_workflow("long").wait_for(run.id, timeout=5)
        assert done.status == RunStatus.DONE
        assert done.output == "done by other"
        assert stopped == [True]  # the holder's step was cancelled and told by ctx.signal
        # At once: within a lease watch tick or two, not at its next renewal (10 s away).
        assert stopped_at[0] - jumped_at < 0.6
        names = {type(e.error).__name__ for e in errors}
        assert {"ClockStepError", "LeaseLostError"} <= names

    asyncio.run(main())
