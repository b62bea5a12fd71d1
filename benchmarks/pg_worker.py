"""Worker process of the PostgreSQL "1 vs 4 workers" benchmark: ``URL IN_FLIGHT``.

Registers the standard 10-step no-op workflow, prints ``ready``, starts
claiming when it reads ``go`` on stdin, and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from streamline_core import Engine, StepContext


async def noop(ctx: StepContext) -> None:
    return None


async def main(url: str, in_flight: int) -> None:
    engine = Engine(url, load_entry_point_plugins=False, max_concurrent_runs=in_flight)
    engine.workflow("bench", steps={f"s{i}": noop for i in range(10)})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    async with engine:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
