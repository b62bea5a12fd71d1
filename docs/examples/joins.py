"""Joins: fan out to child runs and wait for them in one of four modes.

* ``ctx.run_children([(workflow, input), ...], mode=...)`` starts one child
  per pair and suspends the step until the join is decided:

  * ``"all"`` — the list of outputs, in input order (a failed child fails the
    step and the other children are cancelled);
  * ``"all_settled"`` — ``{"status", "output", "error"}`` per child, in order;
  * ``"any"`` — the first child to finish *done* (the rest are cancelled);
  * ``"race"`` — the first child to *end*, whatever its outcome.

* ``ctx.start_child(...)`` returns the child's id at once (the step goes on);
  a later step joins it with ``ctx.join(ids)``.

Run it:

    python docs/examples/joins.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamline_core import Engine, NonRetriableError, StepContext, WorkflowRun

SIZES = (1024, 64, 256)


async def resize(ctx: StepContext) -> dict[str, Any]:
    """Pretend to resize an image: bigger sizes take longer; size 0 is broken."""
    size = ctx.input["size"]
    if size == 0:
        raise NonRetriableError("cannot resize to 0 px")
    await asyncio.sleep(size / 10_000)
    return {"size": size, "url": f"https://img.example/{size}.png"}


async def resize_all(ctx: StepContext) -> None:
    await ctx.run_children([("resize", {"size": s}) for s in SIZES], mode="all")


async def best_effort(ctx: StepContext) -> None:
    await ctx.run_children([("resize", {"size": s}) for s in (64, 0)], mode="all_settled")


async def first_ready(ctx: StepContext) -> None:
    await ctx.run_children([("resize", {"size": s}) for s in SIZES], mode="any")


async def first_to_end(ctx: StepContext) -> None:
    await ctx.run_children([("resize", {"size": s}) for s in (512, 0)], mode="race")


async def kick_off(ctx: StepContext) -> str:
    child_id = await ctx.start_child("resize", {"size": 128}, key="thumbnail")
    ctx.set("thumbnail_run", child_id)
    return child_id


async def collect(ctx: StepContext) -> None:
    await ctx.join([ctx.context["thumbnail_run"]])


async def main(engine: Engine | None = None) -> dict[str, WorkflowRun]:
    """Run each join; return the finished parent runs by name."""
    engine = engine or Engine("memory://")
    async with engine:
        engine.workflow("resize", steps={"resize": resize})
        flows = {
            "all": engine.workflow("gallery", steps={"resize_all": resize_all}),
            "all_settled": engine.workflow("settled", steps={"best_effort": best_effort}),
            "any": engine.workflow("preview", steps={"first_ready": first_ready}),
            "race": engine.workflow(
                "race", steps={"first_to_end": {"handler": first_to_end, "retries": 1}}
            ),
            "start_child + join": engine.workflow(
                "thumbnail", steps={"kick_off": kick_off, "collect": collect}
            ),
        }
        runs = {name: await wf.start() for name, wf in flows.items()}
        done = {name: await flows[name].wait_for(run.id, timeout=10) for name, run in runs.items()}

    for name, run in done.items():
        shown = run.output if run.error is None else f"{run.error.code}: {run.error.message}"
        print(f"{name}: {run.status} -> {shown}")
    return done


if __name__ == "__main__":
    asyncio.run(main())
