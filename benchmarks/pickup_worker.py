"""Worker for the pickup-latency benchmark: records when each run's first step starts.

``STORE OUT [notify|poll]``: with ``poll`` the store's ``wait_for_work`` is
hidden from the engine, so an idle worker finds new runs by polling only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from streamline_core import Engine, StepContext


async def main(store: str, out: str, mode: str = "notify") -> None:
    if mode == "poll":
        from streamline_core._store_url import store_from_url

        built = store_from_url(store)
        built.wait_for_work = None  # type: ignore[attr-defined]  # polling only
        engine = Engine(built, load_entry_point_plugins=False)
    else:
        engine = Engine(store, load_entry_point_plugins=False)

    async def first(ctx: StepContext) -> None:
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{ctx.run_id} {time.time():.6f}\n".encode())
        os.close(fd)

    engine.workflow("pickup", steps={"first": first})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with engine:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
