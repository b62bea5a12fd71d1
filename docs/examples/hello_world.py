"""Hello World: a three-step workflow, from definition to finished run.

Shows the basics: steps given as a dict (the original library's shape), a
``context`` factory that builds the run's context from its input, one step
reading another's output with ``ctx.get_output``, ``ctx.set`` to update the
context, and ``Workflow.wait_for`` to wait for the run to end.

Run it:

    python docs/examples/hello_world.py

It uses an in-memory store, so nothing is written to disk.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamline_core import Engine, StepContext, WorkflowRun


async def greet(ctx: StepContext) -> dict[str, str]:
    """Build the greeting from the run's context."""
    return {"greeting": f"Hello, {ctx.context['name']}!"}


async def shout(ctx: StepContext) -> dict[str, str]:
    """Read the previous step's output and remember something in the context."""
    greeting: str = ctx.get_output("greet")["greeting"]
    ctx.set("shouted", True)  # saved together with this step's output
    return {"greeting": greeting.upper()}


async def sign(ctx: StepContext) -> dict[str, Any]:
    """The last step's output becomes the run's output."""
    return {"message": ctx.get_output("shout")["greeting"], "signed_by": "Streamline"}


async def main(engine: Engine | None = None) -> WorkflowRun:
    """Run one ``hello-world`` workflow and return the finished run."""
    engine = engine or Engine("memory://")
    async with engine:  # starts the worker that executes the steps
        hello = engine.workflow(
            "hello-world",
            steps={"greet": greet, "shout": shout, "sign": sign},
            context=lambda input: {"name": input["name"]},
        )
        run = await hello.start({"name": "World"})
        print(f"started run {run.id} ({run.status})")

        done = await hello.wait_for(run.id, timeout=10)

    for step in done.steps:
        print(f"  {step.step_id:<6} {step.status:<8} -> {step.output}")
    print(f"run {done.status}: {done.output['message']}")
    print(f"context: {done.context}")
    return done


if __name__ == "__main__":
    asyncio.run(main())
