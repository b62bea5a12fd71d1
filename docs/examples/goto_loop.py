"""Goto: a durable loop — poll until a job is ready, then jump ahead.

Shows ``ctx.goto(step_id)``: the calling step ends (``skipped``) and the run
continues at ``step_id``. Jumping back resets that step and every later one
to ``pending`` (their outputs cleared, the context kept), so ``poll`` and
``check`` run again; jumping forward records the steps in between as
``skipped``. ``engine.workflow(..., max_gotos=...)`` bounds the loop. The
original library's name is ``goto``.

Run it:

    python docs/examples/goto_loop.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamline_core import Engine, StepContext, WorkflowRun


async def poll(ctx: StepContext) -> dict[str, Any]:
    """Ask the (pretend) job how far it got; the context counts the polls."""
    polls = ctx.context.get("polls", 0) + 1
    ctx.set("polls", polls)
    return {"progress": min(100, polls * 40)}


async def check(ctx: StepContext) -> str:
    progress = ctx.get_output("poll")["progress"]
    if progress < 100:
        print(f"  progress {progress}%: poll again")
        await ctx.goto("poll")  # back: a durable loop turn
    if ctx.input.get("skip_report"):
        await ctx.goto("publish")  # forward: 'report' is recorded as skipped
    return "ready"


async def report(ctx: StepContext) -> str:
    return f"report after {ctx.context['polls']} polls"


async def publish(ctx: StepContext) -> dict[str, Any]:
    return {"published": True, "report": ctx.get_output("report")}


async def main(engine: Engine | None = None) -> dict[str, WorkflowRun]:
    """One run with the report, one that jumps past it."""
    engine = engine or Engine("memory://")
    runs: dict[str, WorkflowRun] = {}
    async with engine:
        wf = engine.workflow(
            "job-watcher",
            steps={"poll": poll, "check": check, "report": report, "publish": publish},
            max_gotos=10,
        )
        for name, skip in (("full", False), ("short", True)):
            print(f"{name}:")
            run = await wf.start({"skip_report": skip})
            runs[name] = done = await wf.wait_for(run.id, timeout=10)
            steps = ", ".join(f"{s.step_id}={s.status}" for s in done.steps)
            print(f"  run {done.status} after {done.gotos} gotos: {steps} -> {done.output}")
    return runs


if __name__ == "__main__":
    asyncio.run(main())
