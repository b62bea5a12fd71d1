"""Saga: when an order fails, its done steps are compensated in reverse order.

Shows ``StepConfig(handler, compensate=undo)``: reserve stock, charge the
card, then shipping fails for good. The run's ``compensate`` handlers run
for the steps that were ``done``, last first (refund, then release), each
recorded durably on its step (``step.compensation``) and retried up to
``compensate_retries`` attempts, so a crash mid-saga never refunds twice.
The run is ``running`` while it compensates and ends ``failed`` with its
original error and ``run.compensation == "done"``. A compensate handler
gets a ``StepContext`` whose ``ctx.error`` is the run's failure. The
original library's name is ``onCompensate``.

Run it:

    python docs/examples/saga.py
"""

from __future__ import annotations

import asyncio

from streamline_core import Engine, NonRetriableError, StepConfig, StepContext, WorkflowRun


async def reserve(ctx: StepContext) -> dict[str, str]:
    return {"reservation": "R-17"}


async def release(ctx: StepContext) -> None:
    print(f"  release {ctx.get_output('reserve')['reservation']}")


async def charge(ctx: StepContext) -> dict[str, str]:
    return {"payment": "P-42", "amount": "€30"}


async def refund(ctx: StepContext) -> None:
    assert ctx.error is not None
    print(f"  refund {ctx.get_output('charge')['payment']} because: {ctx.error.message}")


async def ship(ctx: StepContext) -> None:
    raise NonRetriableError("no courier serves this address")


async def main(engine: Engine | None = None) -> WorkflowRun:
    """Run the order saga and return the failed, compensated run."""
    engine = engine or Engine("memory://")
    events: list[str] = []
    async with engine:
        for name in ("workflow:compensating", "step:compensated", "workflow:failed"):
            engine.on(name)(lambda e: events.append(f"{e.name}({e.step_id or ''})"))
        order = engine.workflow(
            "order",
            steps={
                "reserve": StepConfig(reserve, compensate=release),
                "charge": StepConfig(charge, compensate=refund, compensate_retries=5),
                "ship": ship,
            },
        )
        print("compensating:")
        run = await order.start({"sku": "mug"})
        done = await order.wait_for(run.id, timeout=10)
    assert done.error is not None
    print(f"events: {', '.join(events)}")
    print(
        f"run {done.status} ({done.error.message}); compensation {done.compensation}: "
        + ", ".join(f"{s.step_id}={s.compensation}" for s in done.steps)
    )
    return done


if __name__ == "__main__":
    asyncio.run(main())
