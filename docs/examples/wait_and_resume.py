"""Wait & Resume: a human approval step.

Shows ``ctx.wait``: the ``wait`` step suspends the run durably (status
``waiting``, no worker holds it, nothing runs) until someone calls
``Workflow.resume(run_id, payload)``; the payload becomes that step's output.
Code after ``ctx.wait`` never runs. It also shows how a reviewer's inbox
finds waiting runs (``engine.runs.find``), and the error a second resume
gets (``InvalidStateError``, code ``INVALID_STATE``).

Run it:

    python docs/examples/wait_and_resume.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from streamline_core import (
    Engine,
    InvalidStateError,
    RunStatus,
    StepContext,
    Workflow,
    WorkflowRun,
)


async def submit(ctx: StepContext) -> dict[str, Any]:
    """Record the request."""
    return {"submitted": True, "amount": ctx.context["amount"]}


async def wait(ctx: StepContext) -> None:
    """Suspend until a person decides; ``data`` is shown to whoever resumes the run."""
    await ctx.wait("Please approve this expense", {"request": ctx.context})
    # Never reached: when resumed, the payload becomes this step's output.


async def execute(ctx: StepContext) -> dict[str, Any]:
    """Act on the decision."""
    decision: dict[str, Any] = ctx.get_output("wait")
    if not decision["approved"]:
        return {"paid": False, "rejected_by": decision["by"]}
    return {"paid": True, "amount": ctx.context["amount"], "approved_by": decision["by"]}


def define(engine: Engine) -> Workflow:
    """Register the approval workflow on ``engine``."""
    return engine.workflow(
        "expense-approval",
        steps={"submit": submit, "wait": wait, "execute": execute},
        context=lambda input: {"employee": input["employee"], "amount": input["amount"]},
    )


async def wait_until_waiting(workflow: Workflow, run_id: str) -> WorkflowRun:
    """Poll the run like a dashboard would, until it is suspended."""
    while True:
        run = await workflow.get(run_id)
        if run is not None and run.status == RunStatus.WAITING:
            return run
        await asyncio.sleep(0.01)


async def main(engine: Engine | None = None) -> WorkflowRun:
    """Submit an expense, approve it as a reviewer, and return the finished run."""
    engine = engine or Engine("memory://")
    async with engine:
        approval = define(engine)
        run = await approval.start({"employee": "ada", "amount": 120})
        await wait_until_waiting(approval, run.id)

        # A reviewer's inbox: every expense waiting for a decision.
        inbox = await engine.runs.find(workflow_id="expense-approval", status=RunStatus.WAITING)
        for waiting in inbox.items:
            assert waiting.wait is not None
            print(f"run {waiting.id} is waiting: {waiting.wait.reason!r} {waiting.wait.data}")

        # Later (minutes or weeks; the run lives in the store meanwhile)...
        resumed = await approval.resume(run.id, {"approved": True, "by": "admin"})
        print(f"resumed -> {resumed.status}")
        done = await approval.wait_for(run.id, timeout=10)

        # A run that is no longer waiting cannot be resumed again.
        try:
            await approval.resume(run.id, {"approved": False, "by": "someone else"})
        except InvalidStateError as err:
            print(f"second resume refused: {err.code} (HTTP {err.status})")

    print(f"run {done.status}: {done.output}")
    return done


if __name__ == "__main__":
    asyncio.run(main())
