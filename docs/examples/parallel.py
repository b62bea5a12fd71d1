"""Parallel Execution: ``execute_parallel`` inside a step.

Shows the four modes of ``execute_parallel``, each in its own step:

* ``"all"`` — every result, in order (the first failure cancels the rest and is raised);
* ``"race"`` — whichever task finishes first decides, success or failure;
* ``"any"`` — the first *success*; failures are ignored unless every task fails;
* ``"all_settled"`` — a ``Settled`` per task (``fulfilled`` with ``.value`` or
  ``rejected`` with ``.error``), never raises.

The tasks run concurrently inside one step, so the step's output (and its one
commit) holds all their results. Steps must return JSON-compatible values,
so the ``all_settled`` step turns its ``Settled`` objects into dicts.

Run it:

    python docs/examples/parallel.py
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from streamline_core import Engine, Settled, StepContext, WorkflowRun, execute_parallel

# Pretend APIs: (latency in seconds, payload or error).
APIS: dict[str, tuple[float, Any]] = {
    "users": (0.20, {"users": 42}),
    "orders": (0.15, {"orders": 7}),
    "stock": (0.10, {"items": 1300}),
}
MIRRORS: dict[str, tuple[float, Any]] = {
    "eu": (0.02, ConnectionError("eu mirror is down")),
    "us": (0.08, {"mirror": "us"}),
    "asia": (0.12, {"mirror": "asia"}),
}


async def call(name: str, latency: float, answer: Any) -> Any:
    """A fake HTTP call: wait ``latency`` seconds, then answer or fail."""
    await asyncio.sleep(latency)
    if isinstance(answer, Exception):
        raise answer
    return {"source": name, **answer}


def calls(apis: dict[str, tuple[float, Any]]) -> list[Callable[[], Awaitable[Any]]]:
    """One zero-argument task per API, as ``execute_parallel`` takes them (``() => fetch()``)."""
    return [partial(call, name, latency, answer) for name, (latency, answer) in apis.items()]


async def fetch_all(ctx: StepContext) -> dict[str, Any]:
    """Call every API at once; takes as long as the slowest, not the sum."""
    started = time.perf_counter()
    results = await execute_parallel(calls(APIS), mode="all")
    return {"results": results, "seconds": round(time.perf_counter() - started, 2)}


async def first_answer(ctx: StepContext) -> dict[str, Any]:
    """``race``: the fastest mirror wins, even though its answer is an error."""
    try:
        winner = await execute_parallel(calls(MIRRORS), mode="race")
    except ConnectionError as err:
        return {"error": str(err)}
    return {"winner": winner}


async def first_success(ctx: StepContext) -> dict[str, Any]:
    """``any``: the fastest mirror that answers successfully."""
    winner = await execute_parallel(calls(MIRRORS), mode="any")
    return {"winner": winner}


def describe(settled: Settled) -> dict[str, Any]:
    """A ``Settled`` as JSON, so it can be stored as step output."""
    if settled.status == "fulfilled":
        return {"status": "fulfilled", "value": settled.value}
    return {"status": "rejected", "error": repr(settled.error)}


async def best_effort(ctx: StepContext) -> dict[str, Any]:
    """``all_settled``: ask every mirror, keep what worked, report what failed."""
    outcomes: list[Settled] = await execute_parallel(calls(MIRRORS), mode="all_settled")
    return {"outcomes": [describe(o) for o in outcomes]}


async def main(engine: Engine | None = None) -> WorkflowRun:
    """Run the ``parallel-fetch`` workflow and return the finished run."""
    engine = engine or Engine("memory://")
    async with engine:
        workflow = engine.workflow(
            "parallel-fetch",
            steps={
                "fetch_all": fetch_all,
                "first_answer": first_answer,
                "first_success": first_success,
                "best_effort": best_effort,
            },
        )
        run = await workflow.start()
        done = await workflow.wait_for(run.id, timeout=10)

    print(f"run {done.status}")
    fetched = done.outputs["fetch_all"]
    print(
        f"all: {len(fetched['results'])} calls in {fetched['seconds']}s (one after another: 0.45s)"
    )
    for result in fetched["results"]:
        print(f"  {result}")
    print(f"race: {done.outputs['first_answer']}")
    print(f"any: {done.outputs['first_success']}")
    print("all_settled:")
    for outcome in done.outputs["best_effort"]["outcomes"]:
        print(f"  {outcome}")
    return done


if __name__ == "__main__":
    asyncio.run(main())
