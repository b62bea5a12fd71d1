"""Worker memory over a store holding 10k runs waiting on ``ctx.wait``, vs an empty store.

The store is filled once by an engine that starts the runs and lets each
suspend in its first step. Then, alternately, a fresh process starts an
engine on the full store and one on an empty store, idles a few seconds
(several claim polls) and reports its RSS and what ``tracemalloc`` traced
since just before the engine started. Flat means the two are the same: the
worker keeps no state per waiting run.

``python -m benchmarks.memory STORE_PATH IDLE_SECONDS`` is that child process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure, progress
from streamline_core import Engine, StepContext

ROOT = Path(__file__).resolve().parent.parent


async def ask(ctx: StepContext) -> None:
    await ctx.wait("approve")


async def done(ctx: StepContext) -> None:
    return None


def _workflow(engine: Engine) -> Any:
    return engine.workflow("approval", steps={"ask": ask, "done": done})


async def fill(path: str, n: int, in_flight: int = 200) -> None:
    """Start ``n`` runs and return once all of them wait on ``ctx.wait``."""
    from streamline_sqlite import SQLiteStore

    store = SQLiteStore(path)
    engine = Engine(store, load_entry_point_plugins=False, max_concurrent_runs=in_flight)
    wf = _workflow(engine)
    async with engine:
        for start in range(0, n, in_flight):
            await asyncio.gather(*(wf.start() for _ in range(min(in_flight, n - start))))
        while await engine.runs.count(status="waiting") < n:
            await asyncio.sleep(0.05)
    await store.close()


def _vm(field: str) -> int:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in bytes (0 where there is none)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def _idle(path: str, idle: float) -> dict[str, Any]:
    from streamline_sqlite import SQLiteStore

    store = SQLiteStore(path)
    engine = Engine(store, load_entry_point_plugins=False)
    _workflow(engine)
    rss_before = _vm("VmRSS")
    tracemalloc.start()
    async with engine:
        await asyncio.sleep(idle)
        current, peak = tracemalloc.get_traced_memory()
        rss = _vm("VmRSS")
        waiting = await engine.runs.count(status="waiting")
    tracemalloc.stop()
    await store.close()
    return {
        "waiting_runs": waiting,
        "rss_bytes": rss,
        "rss_growth_bytes": rss - rss_before,
        "traced_bytes": current,
        "traced_peak_bytes": peak,
    }


def _child(path: str, idle: float) -> dict[str, Any]:
    done_ = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", path, str(idle)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done_.stdout.strip().splitlines()[-1])
    return result


def worker_memory(waiting: int = 10_000, reps: int = 3, idle: float = 3.0) -> dict[str, Any]:
    """Each figure per store (empty, ``waiting`` runs), median of ``reps`` alternating processes."""
    with tempfile.TemporaryDirectory(prefix="streamline-memory-") as tmp:
        full, empty = str(Path(tmp) / "full.db"), str(Path(tmp) / "empty.db")
        progress(f"memory: filling a store with {waiting:,} waiting runs")
        asyncio.run(fill(full, waiting))
        asyncio.run(fill(empty, 0))
        samples: dict[str, list[dict[str, Any]]] = {"empty": [], "full": []}
        for rep in range(reps):
            progress(f"memory: idle worker processes, repetition {rep + 1}/{reps}")
            samples["empty"].append(_child(empty, idle))
            samples["full"].append(_child(full, idle))
    keys = ("rss_bytes", "rss_growth_bytes", "traced_bytes", "traced_peak_bytes")
    out: dict[str, Any] = {"waiting": waiting, "idle_s": idle}
    for name, rows in samples.items():
        out[name] = {key: Figure.of(row[key] for row in rows) for key in keys}
        out[name]["waiting_runs"] = rows[0]["waiting_runs"]
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_idle(sys.argv[1], float(sys.argv[2])))))
