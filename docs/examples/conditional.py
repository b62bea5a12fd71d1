"""Conditional Steps: skip a step, or branch inside one.

Shows the two ways to make a step conditional, with the decorator form of
defining a workflow (``@workflow.step``):

* ``skip_if=lambda ctx: ...`` — the engine evaluates it before the step; when
  true, the step is recorded as ``skipped`` (output ``None``) and never runs;
* plain ``if`` inside a handler — the step runs and its output says which
  branch it took (the original library's style).

Two orders go through the same workflow: a basic one with standard shipping
and a premium one with express shipping.

Run it:

    python docs/examples/conditional.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamline_core import Engine, StepContext, Workflow, WorkflowRun


def define(engine: Engine) -> Workflow:
    """Register the ``conditional-flow`` workflow, one decorated step at a time."""
    flow = engine.workflow(
        "conditional-flow",
        context=lambda input: {"tier": input["tier"], "priority": input["priority"]},
    )

    @flow.step
    async def check(ctx: StepContext) -> dict[str, Any]:
        return {"tier": ctx.context["tier"]}

    @flow.step(skip_if=lambda ctx: ctx.context["tier"] != "premium")
    async def premium_feature(ctx: StepContext) -> dict[str, Any]:
        # Only runs for premium customers; for the others the step is "skipped".
        return {"premium": True, "gift": "tote bag"}

    @flow.step
    async def shipping(ctx: StepContext) -> dict[str, str]:
        if ctx.context["priority"] == "express":
            return {"shipping": "express"}
        return {"shipping": "standard"}

    @flow.step
    async def summary(ctx: StepContext) -> dict[str, Any]:
        premium = ctx.get_output("premium_feature")  # None when skipped
        return {
            "tier": ctx.context["tier"],
            "gift": premium["gift"] if premium else None,
            "shipping": ctx.get_output("shipping")["shipping"],
        }

    return flow


async def main(engine: Engine | None = None) -> dict[str, WorkflowRun]:
    """Run a basic and a premium order; return both finished runs by tier."""
    engine = engine or Engine("memory://")
    async with engine:
        flow = define(engine)
        orders = {
            "basic": await flow.start({"tier": "basic", "priority": "standard"}),
            "premium": await flow.start({"tier": "premium", "priority": "express"}),
        }
        done = {tier: await flow.wait_for(run.id, timeout=10) for tier, run in orders.items()}

    for tier, run in done.items():
        print(f"{tier} order: {run.status}")
        for step in run.steps:
            print(f"  {step.step_id:<16} {step.status:<8} -> {step.output}")
    return done


if __name__ == "__main__":
    asyncio.run(main())
