"""Crash-test worker for child runs: ``python -m tests.crash.children_app DB``.

Workflow ``family`` runs one child of workflow ``kid`` and returns its output;
its joins re-check their children every second (``join_recheck=1``). With
``STREAMLINE_TEST_DIE_AFTER_CHILD_END=1`` the process kills itself the moment
a ``kid`` run's end is stored and announced, before it can wake the parent:
the crash between a child's end and the notification.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from streamline_core import Engine, Event, StepContext, hookimpl


class DieAfterChildEnd:
    """Exit at once (no cleanup, as a SIGKILL) when a child run has ended."""

    @hookimpl
    def streamline_event(self, event: Event) -> None:
        if event.name == "workflow:completed" and event.workflow_id == "kid":
            os._exit(17)


def build(engine: Engine) -> None:
    async def work(ctx: StepContext) -> str:
        await asyncio.sleep(0.3)  # the parent has suspended on its join by now
        return f"kid {ctx.input['n']} by {os.getpid()}"

    engine.workflow("kid", steps={"work": work})

    async def call(ctx: StepContext) -> None:
        await ctx.run_child("kid", {"n": 1})

    async def report(ctx: StepContext) -> str:
        return str(ctx.get_output("call"))

    engine.workflow("family", steps={"call": call, "report": report}, join_recheck=1.0)


async def main(db: str) -> None:
    plugins = [DieAfterChildEnd()] if os.environ.get("STREAMLINE_TEST_DIE_AFTER_CHILD_END") else []
    engine = Engine(
        f"sqlite:///{db}",
        lease=1.0,
        plugins=plugins,
        min_poll_interval=0.02,
        max_poll_interval=0.2,
        load_entry_point_plugins=False,
    )
    build(engine)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with engine:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
