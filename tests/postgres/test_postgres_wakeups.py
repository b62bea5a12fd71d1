"""LISTEN/NOTIFY wakes an idle worker: a run started elsewhere is picked up in a round trip.

This is the one place where a real clock is needed (NOTIFY is about real
latency); the waits are fractions of a second.
"""

from __future__ import annotations

import asyncio
import statistics
import uuid

from streamline_core import Engine, StepContext
from streamline_postgres import PostgresStore
from tests.postgres.server import drop_table, server_url


async def test_an_idle_worker_is_woken_by_notify_not_by_its_poll_interval() -> None:
    table = f"t_{uuid.uuid4().hex[:12]}"
    url = server_url()
    arrived: asyncio.Queue[float] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def ping(ctx: StepContext) -> None:
        arrived.put_nowait(loop.time())

    def engine(worker_id: str) -> Engine:
        e = Engine(
            PostgresStore(url, table=table),
            worker_id=worker_id,
            # Polls 5 s apart: a pickup faster than that is the notification's doing.
            min_poll_interval=5.0,
            max_poll_interval=5.0,
            load_entry_point_plugins=False,
        )
        e.workflow("ping", steps={"ping": ping})
        return e

    worker, client = engine("worker"), engine("client")
    pickups: list[float] = []
    try:
        async with worker:
            await asyncio.sleep(0.5)  # idle now: its next poll is seconds away
            for _ in range(5):
                started = loop.time()
                await client.get_workflow("ping").start()
                pickups.append(await asyncio.wait_for(arrived.get(), 4.0) - started)
                await asyncio.sleep(0.1)  # idle again before the next one
    finally:
        await client.shutdown()
        for e in (worker, client):
            await e.store.close()
        await drop_table(table)
    print(
        f"\npickup with NOTIFY: p50 {statistics.median(pickups) * 1000:.1f} ms, max "
        f"{max(pickups) * 1000:.1f} ms"
    )
    assert max(pickups) < 1.0
