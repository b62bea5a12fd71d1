"""Sleep Timer: a durable ``ctx.sleep`` between two steps.

Shows ``ctx.sleep(seconds)``: the run is stored as ``waiting`` on a timer
(``wait.kind == "timer"``, ``next_run_at`` set) and no worker holds it while
it sleeps, so a sleep of an hour or a month costs nothing and survives
restarts: whichever worker is running when the timer is due picks the run up.
The sleeping step's output is ``None``.

Run it (sleeps 2 real seconds):

    python docs/examples/sleep_timer.py

Tests pass an engine on a ``FakeClock`` and the example advances that clock
instead of waiting.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from streamline_core import Engine, RunStatus, StepContext, Workflow, WorkflowRun
from streamline_testing import FakeClock

SLEEP = timedelta(seconds=2)  # in production this could be timedelta(hours=1)


async def begin(ctx: StepContext) -> dict[str, bool]:
    return {"ready": True}


async def nap(ctx: StepContext) -> None:
    """Suspend the run for ``SLEEP``; the next step runs once the timer is due."""
    await ctx.sleep(SLEEP)


async def complete(ctx: StepContext) -> dict[str, bool]:
    return {"done": True}


async def wait_until_waiting(workflow: Workflow, run_id: str) -> WorkflowRun:
    """Poll the run like a dashboard would, until it is suspended."""
    while True:
        run = await workflow.get(run_id)
        if run is not None and run.status == RunStatus.WAITING:
            return run
        await asyncio.sleep(0.01)


async def main(engine: Engine | None = None, clock: FakeClock | None = None) -> WorkflowRun:
    """Start a run, watch it sleep, and return it once the timer has fired.

    Args:
        engine: Defaults to an in-memory engine on the system clock.
        clock: The engine's ``FakeClock`` in tests; advanced instead of waiting.
    """
    engine = engine or Engine("memory://")
    async with engine:
        delayed = engine.workflow(
            "delayed-task", steps={"begin": begin, "nap": nap, "complete": complete}
        )
        run = await delayed.start()

        sleeping = await wait_until_waiting(delayed, run.id)
        assert sleeping.wait is not None
        print(
            f"run {run.id} is {sleeping.status} on a {sleeping.wait.kind}, "
            f"due at {sleeping.next_run_at:%H:%M:%S}; lease held by: {sleeping.lease}"
        )

        if clock is not None:
            await clock.advance(SLEEP.total_seconds())  # tests: skip ahead instead of waiting
        done = await delayed.wait_for(run.id, timeout=SLEEP.total_seconds() + 10)

    begin_state, nap_state, _ = done.steps
    assert begin_state.ended_at is not None and nap_state.ended_at is not None
    slept = nap_state.ended_at - begin_state.ended_at
    print(f"run {done.status} after sleeping {slept.total_seconds():.1f}s: {done.output}")
    return done


if __name__ == "__main__":
    asyncio.run(main())
