"""Schedule worker: ``python -m tests.crash.schedule_app DB``.

Declares the every-second schedule ``tick`` (catch-up ``all``, overlap
``allow``, so every occurrence must have its run) and works until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from streamline_core import Engine, StepContext


async def note(ctx: StepContext) -> int:
    return os.getpid()


async def main(db: str) -> None:
    engine = Engine(
        f"sqlite:///{db}",
        lease=2.0,
        min_poll_interval=0.02,
        max_poll_interval=0.2,
        load_entry_point_plugins=False,
    )
    target = engine.workflow("every-second", steps={"note": note})
    engine.schedule("tick", target, every=1, catch_up="all", overlap="allow")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with engine:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
