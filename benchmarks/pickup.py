"""Cross-process pickup latency: a client process starts runs, an idle worker process runs them.

Measures the time from ``start()`` returning in the client to the first step
starting in the worker, with the engine's default polling (50 ms doubling to
1 s, ±20 % jitter) on SQLite.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.figures import percentile
from streamline_core import Engine, StepContext


async def _noop(ctx: StepContext) -> None:
    return None


ROOT = Path(__file__).resolve().parent.parent


def pickup_ms(out: Path, started: dict[str, float]) -> list[float]:
    """Milliseconds from each run's start to its first step, from a worker's
    ``run_id epoch_seconds`` lines in ``out`` and the client's start times."""
    lat = []
    for line in out.read_text().splitlines():
        run_id, at = line.split()
        lat.append((float(at) - started[run_id]) * 1000)
    return lat


def measure(
    n: int = 40, seed: int = 1, gap: tuple[float, float] = (0.2, 2.5), tail: float = 2.0
) -> dict[str, float]:
    """p50/p90/p99/max pickup latency in milliseconds over ``n`` runs.

    Runs are started ``gap`` seconds apart (uniformly random), so the worker
    is found at every depth of its idle back-off; ``tail`` seconds after the
    last start the worker is stopped.
    """
    with tempfile.TemporaryDirectory(prefix="streamline-pickup-") as tmp:
        return _measure(Path(tmp), n, seed, gap, tail)


def _measure(
    tmp: Path, n: int, seed: int, gap: tuple[float, float], tail: float
) -> dict[str, float]:
    store, out = f"sqlite:///{tmp / 'p.db'}", tmp / "starts.txt"
    worker = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.pickup_worker", store, str(out)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert worker.stdout is not None
    worker.stdout.readline()
    rng = random.Random(seed)
    started: dict[str, float] = {}

    async def client() -> None:
        engine = Engine(store, load_entry_point_plugins=False)
        wf = engine.workflow("pickup", steps={"first": _noop})
        for _ in range(n):
            await asyncio.sleep(rng.uniform(*gap))  # let the worker go idle at random depths
            run = await wf.start()
            started[run.id] = time.time()
        await asyncio.sleep(tail)
        await engine.shutdown()

    asyncio.run(client())
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=10)
    lat = pickup_ms(out, started)
    return {
        "runs": len(lat),
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat),
    }


if __name__ == "__main__":
    print(measure())
