"""Cross-process pickup latency: a client process starts runs, an idle worker process runs them.

Measures the time from ``start()`` returning in the client to the first step
starting in the worker, with the engine's default polling (50 ms doubling to
1 s, ±20 % jitter) on SQLite.
"""

from __future__ import annotations

import asyncio
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streamline_core import Engine, StepContext


async def _noop(ctx: StepContext) -> None:
    return None


def measure(n: int = 40, seed: int = 1) -> dict[str, float]:
    """p50/p90/p99/max pickup latency in milliseconds over ``n`` runs."""
    tmp = Path(tempfile.mkdtemp(prefix="streamline-pickup-"))
    store, out = f"sqlite:///{tmp / 'p.db'}", tmp / "starts.txt"
    worker = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.pickup_worker", store, str(out)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    worker.stdout.readline()
    rng = random.Random(seed)
    started: dict[str, float] = {}

    async def client() -> None:
        engine = Engine(store, load_entry_point_plugins=False)
        wf = engine.workflow("pickup", steps={"first": _noop})
        for _ in range(n):
            await asyncio.sleep(rng.uniform(0.2, 2.5))  # let the worker go idle at random depths
            run = await wf.start()
            started[run.id] = time.time()
        await asyncio.sleep(2.0)
        await engine.shutdown()

    asyncio.run(client())
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=10)
    lat = []
    for line in out.read_text().splitlines():
        run_id, at = line.split()
        lat.append((float(at) - started[run_id]) * 1000)
    lat.sort()
    q = statistics.quantiles(lat, n=100)
    return {"runs": len(lat), "p50_ms": q[49], "p90_ms": q[89], "p99_ms": q[98], "max_ms": lat[-1]}


if __name__ == "__main__":
    print(measure())
