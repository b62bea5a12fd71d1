"""Child runs: a step runs another workflow as a child and gets its output.

* ``ctx.run_child(payments, input)`` starts a run of ``payments`` whose
  ``parent_run_id``/``parent_step_id`` point back here, and suspends the
  step (no worker holds the parent meanwhile). When the child is done, the
  step's output is the child's output.
* A failed child fails the step with ``ChildWorkflowError`` (code
  ``CHILD_FAILED``), never a sentinel value; the step's own retries start a
  *new* child (a new attempt derives a new child id).
* ``engine.runs.find(parent_run_id=...)`` lists a run's children.

Run it:

    python docs/examples/child_runs.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamline_core import Engine, NonRetriableError, StepConfig, StepContext, WorkflowRun

declines: list[str] = []


async def charge(ctx: StepContext) -> dict[str, Any]:
    """The payment provider declines the first card it sees."""
    if not declines:
        declines.append(ctx.run_id)
        raise NonRetriableError("card declined")
    return {"charged": ctx.input["amount"], "payment_run": ctx.run_id}


async def pay(ctx: StepContext) -> None:
    """Run the ``payments`` workflow as a child: this step's output is the child's output."""
    await ctx.run_child("payments", {"amount": ctx.input["amount"]})


async def confirm(ctx: StepContext) -> dict[str, Any]:
    return {"order": ctx.input["order"], "payment": ctx.get_output("pay")}


async def main(engine: Engine | None = None) -> tuple[WorkflowRun, list[WorkflowRun]]:
    """Run an order whose payment is a child run; return the order and its children."""
    declines.clear()
    engine = engine or Engine("memory://")
    async with engine:
        engine.workflow("payments", steps={"charge": charge})
        order = engine.workflow(
            "order",
            steps={
                # retries=2: the declined payment fails the step once; the retry
                # starts a second payments run.
                "pay": StepConfig(pay, retries=2, retry_delay=0.0),
                "confirm": confirm,
            },
        )
        run = await order.start({"order": "A-1", "amount": 42})
        done = await order.wait_for(run.id, timeout=10)
        children = (await engine.runs.find(parent_run_id=run.id, sort="created_at")).items

    print(f"order {done.status}: {done.output}")
    for child in children:
        error = f" ({child.error.message})" if child.error else ""
        step_id = child.parent_step_id
        print(f"  child {child.workflow_id} {child.status}{error}, started by step {step_id!r}")
    step = done.steps[0]
    print(f"step 'pay' took {step.attempts} attempts")
    return done, children


if __name__ == "__main__":
    asyncio.run(main())
