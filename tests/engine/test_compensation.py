"""Saga compensation: a failed run's done steps undone in reverse, durably, once each."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from streamline_core import (
    Engine,
    ErrorCode,
    NonRetriableError,
    RunStatus,
    StepConfig,
    StepContext,
    StepDefaults,
    StepStatus,
    ValidationError,
)
from streamline_testing import InMemoryStore
from tests.conftest import Env
from tests.helpers import settle_until, stored


async def drive(env: Env, seconds: float = 5.0, rounds: int = 10) -> None:
    """Let fake time pass so retries, timers and lease expiries fire."""
    for _ in range(rounds):
        await env.clock.advance(seconds)
        await env.settle()


class Order:
    """An order saga: reserve, charge, ship; each done step knows how to undo itself."""

    def __init__(self, ship_fails: bool = True) -> None:
        self.log: list[str] = []
        self.errors: list[Any] = []
        self.calls: Counter[str] = Counter()
        self.ship_fails = ship_fails
        self.refund_failures = 0
        self.release_gate: asyncio.Event | None = None

    async def reserve(self, ctx: StepContext) -> str:
        self.log.append("reserve")
        return "R1"

    async def release(self, ctx: StepContext) -> None:
        self.calls["release"] += 1
        self.errors.append(ctx.error)
        if self.release_gate is not None:
            await self.release_gate.wait()
        self.log.append(f"release {ctx.get_output('reserve')}")

    async def charge(self, ctx: StepContext) -> str:
        self.log.append("charge")
        return "C1"

    async def refund(self, ctx: StepContext) -> None:
        self.calls["refund"] += 1
        if self.calls["refund"] <= self.refund_failures:
            raise ConnectionError(f"refund attempt {ctx.attempt} failed")
        self.log.append(f"refund {ctx.get_output('charge')}")

    async def ship(self, ctx: StepContext) -> str:
        self.log.append("ship")
        if self.ship_fails:
            raise NonRetriableError("no courier")
        return "shipped"

    def steps(self, **charge: Any) -> dict[str, Any]:
        return {
            "reserve": StepConfig(self.reserve, compensate=self.release),
            "charge": StepConfig(self.charge, compensate=self.refund, retry_delay=1, **charge),
            "ship": self.ship,
        }


async def take_over_twice(env: Env, run_id: str, name: str, steps: dict[str, Any]) -> None:
    """Worker w1 takes the run over from a dead worker and dies too; then w2 takes it
    (both with ``max_recoveries=1``, so w2's takeover is one too many)."""
    for i in (1, 2):
        w = env.engine(worker_id=f"w{i}", lease=10, max_recoveries=1)
        w.workflow(name, steps=steps)
        await w.start()
        await env.clock.advance(11)
        await env.settle()
        if i == 1:
            await settle_until(
                env, stored(env, run_id, lambda r: r.lease is not None and r.lease.owner == "w1")
            )
            w._abandon()


async def test_a_failed_run_compensates_its_done_steps_in_reverse(env: Env) -> None:
    order = Order()
    events: list[tuple[str, str | None]] = []
    async with env.engine() as engine:
        for name in ("workflow:compensating", "step:compensated", "workflow:failed"):
            engine.on(name)(lambda e: events.append((e.name, e.step_id)))
        wf = engine.workflow("order", steps=order.steps())
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert order.log == ["reserve", "charge", "ship", "refund C1", "release R1"]
    assert done.status == RunStatus.FAILED
    assert done.error is not None and done.error.code == ErrorCode.STEP_FAILED
    assert done.error.message == "no courier"  # the original error stays
    assert done.compensation == "done"
    assert [s.compensation for s in done.steps] == ["done", "done", None]
    assert order.errors[0] is not None and order.errors[0].message == "no courier"
    assert events == [
        ("workflow:compensating", None),
        ("step:compensated", "charge"),
        ("step:compensated", "reserve"),
        ("workflow:failed", "ship"),
    ]


async def test_the_run_is_running_while_it_compensates(env: Env) -> None:
    order = Order()
    order.release_gate = asyncio.Event()
    async with env.engine() as engine:
        wf = engine.workflow("order", steps=order.steps())
        run = await wf.start()
        await settle_until(env, stored(env, run.id, lambda r: r.steps[1].compensation == "done"))
        mid = await wf.get(run.id)
        assert mid is not None
        assert mid.status == RunStatus.RUNNING
        assert mid.compensation == "pending"
        assert [s.compensation for s in mid.steps] == ["pending", "done", None]
        order.release_gate.set()
        done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.FAILED and done.compensation == "done"


async def test_a_compensation_is_retried_and_one_that_keeps_failing_is_recorded(env: Env) -> None:
    flaky = Order()
    flaky.refund_failures = 2
    broken = Order()
    broken.refund_failures = 99
    failed_events: list[Any] = []
    async with env.engine() as engine:
        engine.on("step:compensation-failed")(failed_events.append)
        ok = engine.workflow("flaky-refund", steps=flaky.steps(compensate_retries=3))
        bad = engine.workflow("broken-refund", steps=broken.steps(compensate_retries=2))
        runs = [await ok.start(), await bad.start()]
        await drive(env, 2, 5)
        flaky_done = await ok.wait_for(runs[0].id, timeout=10)
        broken_done = await bad.wait_for(runs[1].id, timeout=10)
    assert flaky.calls["refund"] == 3
    assert flaky_done.compensation == "done"
    assert broken.calls["refund"] == 2  # compensate_retries counts attempts
    assert broken_done.status == RunStatus.FAILED
    assert broken_done.compensation == "failed"
    assert [s.compensation for s in broken_done.steps] == ["done", "failed", None]
    assert broken.log[-1] == "release R1"  # the saga goes on past a failed compensation
    assert [e.step_id for e in failed_events] == ["charge"]


async def test_a_crash_mid_saga_resumes_without_compensating_a_step_twice(env: Env) -> None:
    first, second = Order(), Order()
    first.release_gate = asyncio.Event()  # A dies while releasing
    a = env.engine(worker_id="A", lease=30)
    await a.start()
    run = await a.workflow("order", steps=first.steps()).start()
    await settle_until(env, stored(env, run.id, lambda r: r.steps[1].compensation == "done"))

    async def releasing() -> bool:
        return first.calls["release"] == 1

    await settle_until(env, releasing)
    assert first.calls == {"refund": 1, "release": 1}
    a._abandon()

    b = env.engine(worker_id="B", lease=30)
    wf = b.workflow("order", steps=second.steps())
    await b.start()
    await drive(env, 10, 4)
    done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.FAILED and done.compensation == "done"
    assert second.calls == {"release": 1}  # charge was recorded compensated: never again
    assert done.recoveries == 1


async def test_cancel_does_not_compensate_unless_asked(env: Env) -> None:
    plain, saga = Order(ship_fails=False), Order(ship_fails=False)

    async def wait_ship(ctx: StepContext) -> None:
        await ctx.wait("ship it?")

    async with env.engine() as engine:
        a = engine.workflow("plain", steps={**plain.steps(), "ship": wait_ship})
        b = engine.workflow(
            "saga", steps={**saga.steps(), "ship": wait_ship}, compensate_on_cancel=True
        )
        ra, rb = await a.start(), await b.start()
        for r in (ra, rb):
            await settle_until(env, stored(env, r.id, lambda r: r.status == RunStatus.WAITING))
        cancelled_a = await a.cancel(ra.id)
        cancelling = await b.cancel(rb.id, reason="customer changed their mind")
        assert cancelling.status == RunStatus.RUNNING and cancelling.compensation == "pending"
        done_b = await b.wait_for(rb.id, timeout=10)
    assert cancelled_a.status == RunStatus.CANCELLED and cancelled_a.compensation is None
    assert plain.calls == {}
    assert done_b.status == RunStatus.CANCELLED
    assert done_b.compensation == "done"
    assert done_b.error is not None and done_b.error.code == ErrorCode.WORKFLOW_CANCELLED
    assert saga.log[-2:] == ["refund C1", "release R1"]


async def test_a_dead_lettered_run_is_compensated(env: Env) -> None:
    order = Order()

    async def hang(ctx: StepContext) -> None:
        await asyncio.Event().wait()

    steps = {**order.steps(), "ship": hang}
    first = env.engine(worker_id="w0", lease=10)
    await first.start()
    run = await first.workflow("poison", steps=steps).start()
    await settle_until(env, stored(env, run.id, lambda r: r.current_step_id == "ship"))
    first._abandon()
    await take_over_twice(env, run.id, "poison", steps)
    final = await env.engine().workflow("poison", steps=steps).wait_for(run.id, timeout=10)
    assert final.status == RunStatus.FAILED
    assert final.error is not None and final.error.code == ErrorCode.DEAD_LETTERED
    assert final.compensation == "done"
    assert order.calls == {"refund": 1, "release": 1}


async def test_a_compensation_handler_may_not_suspend(env: Env) -> None:
    failures: list[Any] = []

    async def undo(ctx: StepContext) -> None:
        await ctx.sleep(5)

    async def boom(ctx: StepContext) -> None:
        raise NonRetriableError("boom")

    async with env.engine() as engine:
        engine.on("step:compensation-failed")(failures.append)
        wf = engine.workflow(
            "sleepy", steps={"a": StepConfig(lambda ctx: 1, compensate=undo), "b": boom}
        )
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert done.compensation == "failed"
    assert len(failures) == 1
    assert isinstance(failures[0].error, ValidationError)
    assert failures[0].error.code == ErrorCode.VALIDATION_ERROR


async def test_only_done_steps_are_compensated(env: Env) -> None:
    undone: list[str] = []

    def undo(name: str) -> Any:
        async def handler(ctx: StepContext) -> None:
            undone.append(name)

        return handler

    async def boom(ctx: StepContext) -> None:
        raise NonRetriableError("boom")

    async with env.engine() as engine:
        wf = engine.workflow(
            "partial",
            steps={
                "done": StepConfig(lambda ctx: 1, compensate=undo("done")),
                "skipped": StepConfig(
                    lambda ctx: 2, compensate=undo("skipped"), skip_if=lambda ctx: True
                ),
                "fails": StepConfig(boom, compensate=undo("fails")),
                "never": StepConfig(lambda ctx: 3, compensate=undo("never")),
            },
        )
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert undone == ["done"]
    assert [s.status for s in done.steps] == [
        StepStatus.DONE,
        StepStatus.SKIPPED,
        StepStatus.FAILED,
        StepStatus.PENDING,
    ]


async def test_a_run_without_compensate_handlers_fails_as_before(env: Env) -> None:
    async def boom(ctx: StepContext) -> None:
        raise NonRetriableError("boom")

    async with env.engine() as engine:
        wf = engine.workflow("plain", steps={"a": lambda ctx: 1, "b": boom})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert done.status == RunStatus.FAILED
    assert done.compensation is None
    assert [s.compensation for s in done.steps] == [None, None]


def test_compensate_options_in_every_form_and_their_validation() -> None:
    engine = Engine(InMemoryStore(), load_entry_point_plugins=False)

    async def undo(ctx: StepContext) -> None: ...

    wf = engine.workflow(
        "forms",
        steps={"a": {"handler": lambda ctx: 1, "compensate": undo, "compensate_retries": 5}},
        defaults=StepDefaults(compensate_retries=2),
    )

    @wf.step(compensate=undo)
    async def b(ctx: StepContext) -> int:
        return 2

    assert [(s.compensate, s.compensate_retries) for s in wf.steps] == [(undo, 5), (undo, 2)]
    with pytest.raises(ValidationError):
        engine.workflow("bad1", steps={"a": StepConfig(lambda ctx: 1, compensate="undo")})  # type: ignore[arg-type]
    for bad in (0, 21, 1.5, True):
        with pytest.raises(ValidationError):
            engine.workflow(
                f"bad-{bad}",
                steps={"a": StepConfig(lambda ctx: 1, compensate=undo, compensate_retries=bad)},  # type: ignore[arg-type]
            )
    with pytest.raises(ValidationError):
        engine.workflow("bad3", steps={"a": lambda ctx: 1}, compensate_on_cancel="yes")  # type: ignore[arg-type]


async def test_cancel_with_compensate_on_cancel_stops_an_executing_step_first(env: Env) -> None:
    order = Order(ship_fails=False)
    started = asyncio.Event()
    shipped: list[str] = []

    async def slow_ship(ctx: StepContext) -> str:
        started.set()
        await asyncio.Event().wait()
        shipped.append("late")  # never: the step is stopped and fenced
        return "shipped"

    async with env.engine() as engine:
        wf = engine.workflow(
            "saga", steps={**order.steps(), "ship": slow_ship}, compensate_on_cancel=True
        )
        run = await wf.start()
        await asyncio.wait_for(started.wait(), 5)
        await wf.cancel(run.id)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.CANCELLED
    assert done.compensation == "done"
    assert order.calls == {"refund": 1, "release": 1}
    assert shipped == []
    assert done.steps[2].status != StepStatus.DONE


async def test_a_saga_whose_compensations_keep_killing_workers_ends_failed(env: Env) -> None:
    async def reserve(ctx: StepContext) -> str:
        return "R1"

    async def release(ctx: StepContext) -> None:
        await asyncio.Event().wait()  # the worker "dies" in here, every time

    async def ship(ctx: StepContext) -> None:
        raise RuntimeError("truck on fire")

    steps = {
        "reserve": StepConfig(reserve, compensate=release),
        "ship": StepConfig(ship, retries=1),
    }
    first = env.engine(worker_id="w0", lease=10, max_recoveries=1)
    await first.start()
    run = await first.workflow("doomed-saga", steps=steps).start()
    await settle_until(env, stored(env, run.id, lambda r: r.compensation == "pending"))
    assert (await env.store.get(run.id)).recoveries == 0  # type: ignore[union-attr]
    first._abandon()
    await take_over_twice(env, run.id, "doomed-saga", steps)
    final = await env.engine().workflow("doomed-saga", steps=steps).wait_for(run.id, timeout=10)
    assert final.status == RunStatus.FAILED
    assert final.compensation == "failed"
    assert final.steps[0].compensation == "failed"
    assert final.error is not None and "truck on fire" in final.error.message
    assert final.lease is None
