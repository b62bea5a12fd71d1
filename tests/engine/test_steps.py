"""Starting runs and executing steps: order, outputs, context, one write per step."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pydantic
import pytest

from streamline_core import (
    ErrorCode,
    RunStatus,
    StepConfig,
    StepContext,
    StepDefaults,
    StepStatus,
    ValidationError,
)
from tests.conftest import Env
from tests.helpers import CountingStore


async def test_dict_form_runs_steps_in_order_with_outputs(env: Env) -> None:
    order: list[str] = []

    async def fetch(ctx: StepContext) -> dict[str, Any]:
        order.append("fetch")
        return {"html": f"<p>{ctx.context['url']}</p>"}

    async def parse(ctx: StepContext) -> dict[str, Any]:
        order.append("parse")
        return {"data": ctx.get_output("fetch")["html"].upper()}

    async def save(ctx: StepContext) -> dict[str, Any]:
        order.append("save")
        return {"saved": True, "seen": sorted(ctx.outputs)}

    async with env.engine() as engine:
        scraper = engine.workflow(
            "web-scraper",
            steps={"fetch": fetch, "parse": parse, "save": save},
            context=lambda input: {"url": input["url"]},
            version="1.0.0",
        )
        run = await scraper.start({"url": "https://example.com"})
        assert run.status == RunStatus.RUNNING
        done = await scraper.wait_for(run.id, timeout=10)
    assert order == ["fetch", "parse", "save"]
    assert done.status == RunStatus.DONE
    assert done.output == {"saved": True, "seen": ["fetch", "parse"]}
    assert done.workflow_version == "1.0.0"
    assert [s.status for s in done.steps] == [StepStatus.DONE] * 3
    assert all(s.attempts == 1 and s.started_at and s.ended_at for s in done.steps)
    assert done.steps[1].output == {"data": "<P>HTTPS://EXAMPLE.COM</P>"}
    assert done.ended_at is not None
    assert done.lease is None


async def test_decorator_form_declares_steps_in_order(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow("approval-flow")

        @wf.step
        async def submit(ctx: StepContext) -> int:
            return 1

        @wf.step(retries=5, timeout=120, retry_delay=1.0, retry_backoff="exponential")
        async def execute(ctx: StepContext) -> int:
            return int(ctx.get_output("submit")) + 1

        assert wf.step_ids == ["submit", "execute"]
        assert wf.steps[1].retries == 5
        assert wf.steps[1].timeout == 120
        run = await wf.start()
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == 2


async def test_happy_path_costs_one_store_write_per_step(env: Env) -> None:
    counting = CountingStore(env.store)
    async with env.engine(store=counting) as engine:
        steps = {f"s{i}": (lambda ctx, i=i: i) for i in range(10)}
        wf = engine.workflow("ten", steps=steps)
        run = await wf.start()
        await wf.wait_for(run.id, timeout=10)
    assert counting.calls["create"] == 1
    assert counting.calls["transition"] == 10
    assert counting.claimed == 0
    assert counting.writes == 11


async def test_context_set_is_persisted_with_the_step(env: Env) -> None:
    async def first(ctx: StepContext) -> None:
        ctx.set("total", 41)

    async def second(ctx: StepContext) -> int:
        assert ctx.context["total"] == 41
        ctx.set("total", ctx.context["total"] + 1)
        return int(ctx.context["total"])

    async with env.engine() as engine:
        wf = engine.workflow("ctx", steps={"first": first, "second": second}, context={"k": "v"})
        run = await wf.start()
        done = await wf.wait_for(run.id, timeout=10)
    assert done.context == {"k": "v", "total": 42}
    assert done.output == 42


async def test_context_set_refuses_bad_keys_and_values(env: Env) -> None:
    async def bad(ctx: StepContext) -> None:
        ctx.set("when", object())

    async with env.engine() as engine:
        wf = engine.workflow("badctx", steps={"bad": bad})
        run = await wf.start()
        done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.FAILED
    assert done.error is not None
    assert done.error.code == ErrorCode.STEP_FAILED
    assert "object" in done.error.message


async def test_sync_handlers_run_in_a_worker_thread(env: Env) -> None:
    main_thread = threading.get_ident()
    seen: list[int] = []

    def blocking(ctx: StepContext) -> str:
        seen.append(threading.get_ident())
        return "ok"

    async with env.engine() as engine:
        wf = engine.workflow("sync", steps={"blocking": blocking})
        run = await wf.start()
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == "ok"
    assert seen and seen[0] != main_thread


async def test_unstorable_output_fails_the_step_naming_step_and_type(env: Env) -> None:
    attempts = 0

    async def returns_set(ctx: StepContext) -> Any:
        nonlocal attempts
        attempts += 1
        return {"tags": {1, 2}}

    async with env.engine() as engine:
        wf = engine.workflow("unstorable", steps={"returns_set": returns_set})
        run = await wf.start()
        done = await wf.wait_for(run.id, timeout=10)
    assert attempts == 1  # non-retriable
    assert done.status == RunStatus.FAILED
    assert done.error is not None
    assert done.error.code == ErrorCode.STEP_FAILED
    assert "returns_set" in done.error.message
    assert "set" in done.error.message


async def test_pydantic_outputs_are_stored_as_json(env: Env) -> None:
    class Out(pydantic.BaseModel):
        n: int

    async with env.engine() as engine:
        wf = engine.workflow("pyd", steps={"a": lambda ctx: Out(n=3)})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert done.output == {"n": 3}


async def test_skip_if_records_a_skipped_step(env: Env) -> None:
    ran: list[str] = []

    async def premium(ctx: StepContext) -> str:
        ran.append("premium")
        return "premium"

    async with env.engine() as engine:
        wf = engine.workflow(
            "cond",
            steps={
                "check": lambda ctx: ctx.context["tier"],
                "premium": StepConfig(
                    premium, skip_if=lambda ctx: ctx.context["tier"] != "premium"
                ),
                "ship": lambda ctx: "standard",
            },
            context=lambda input: {"tier": input["tier"]},
        )
        basic = await wf.wait_for((await wf.start({"tier": "basic"})).id, timeout=10)
        gold = await wf.wait_for((await wf.start({"tier": "premium"})).id, timeout=10)
    assert basic.steps[1].status == StepStatus.SKIPPED
    assert basic.status == RunStatus.DONE
    assert gold.steps[1].status == StepStatus.DONE
    assert ran == ["premium"]


async def test_input_model_validates_and_is_given_to_handlers(env: Env) -> None:
    class Order(pydantic.BaseModel):
        order_id: str
        amount: int

    seen: list[Any] = []

    async def charge(ctx: StepContext) -> int:
        seen.append(ctx.input)
        return int(ctx.input.amount)

    async with env.engine() as engine:
        wf = engine.workflow("order", steps={"charge": charge}, input_model=Order)
        done = await wf.wait_for((await wf.start({"order_id": "o1", "amount": 5})).id, timeout=10)
        with pytest.raises(ValidationError) as err:
            await wf.start({"order_id": "o2"})
        assert err.value.code == ErrorCode.VALIDATION_ERROR
        assert "amount" in str(err.value)
        assert await engine.runs.count() == 1
    assert done.input == {"order_id": "o1", "amount": 5}
    assert isinstance(seen[0], Order)


async def test_input_that_is_not_json_compatible_creates_no_run(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow("j", steps={"a": lambda ctx: 1})
        for bad in ({"when": object()}, {1: "int key"}, {"x": float("nan")}, {"s": {1}}):
            with pytest.raises(ValidationError):
                await wf.start(bad)
        with pytest.raises(ValidationError):
            await wf.start({}, meta={"b": b"bytes"})
        assert await engine.runs.count() == 0


async def test_idempotency_key_returns_the_active_run(env: Env) -> None:
    gate = asyncio.Event()

    async def slow(ctx: StepContext) -> None:
        await gate.wait()

    async with env.engine() as engine:
        wf = engine.workflow("idem", steps={"slow": slow})
        first = await wf.start({"a": 1}, idempotency_key="order-1")
        again = await wf.start({"a": 2}, idempotency_key="order-1")
        other = await wf.start({"a": 3}, idempotency_key="order-2")
        assert again.id == first.id
        assert other.id != first.id
        gate.set()
        await wf.wait_for(first.id, timeout=10)
        # a finished run frees its key
        third = await wf.start({"a": 4}, idempotency_key="order-1")
        assert third.id != first.id
        await wf.wait_for(third.id, timeout=10)


async def test_start_at_in_the_future_waits_for_the_clock(env: Env) -> None:
    ran: list[str] = []
    async with env.engine() as engine:
        wf = engine.workflow("later", steps={"a": lambda ctx: ran.append("a")})
        run = await wf.start(start_at=env.clock.now() + timedelta(hours=2))
        assert run.status == RunStatus.RUNNING
        await env.settle()
        await env.clock.advance(3600)
        await env.settle()
        assert ran == []
        await env.clock.advance(3600)
        done = await wf.wait_for(run.id, timeout=10)
    assert ran == ["a"]
    assert done.status == RunStatus.DONE


async def test_a_client_engine_only_enqueues_and_a_worker_runs(env: Env) -> None:
    steps = {"a": lambda ctx: "A", "b": lambda ctx: "B"}
    client = env.engine()
    web = client.workflow("enqueue", steps=steps)
    run = await web.start()
    assert run.lease is None
    await env.settle()
    assert (await web.get(run.id)).current_step_id == "a"  # type: ignore[union-attr]
    async with env.engine() as worker:
        wf = worker.workflow("enqueue", steps=steps)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == "B"


async def test_defaults_apply_to_every_step(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow(
            "d",
            steps={"a": lambda ctx: 1, "b": StepConfig(lambda ctx: 2, retries=7)},
            defaults=StepDefaults(retries=2, timeout=30),
        )
    assert (wf.steps[0].retries, wf.steps[0].timeout) == (2, 30)
    assert (wf.steps[1].retries, wf.steps[1].timeout) == (7, 30)


async def test_step_context_facts(env: Env) -> None:
    facts: dict[str, Any] = {}

    async def look(ctx: StepContext) -> None:
        facts.update(
            run_id=ctx.run_id,
            step_id=ctx.step_id,
            workflow_id=ctx.workflow_id,
            attempt=ctx.attempt,
            input=ctx.input,
            meta=dict(ctx.meta),
            key=ctx.idempotency_key("charge"),
        )
        ctx.log("looked", n=1)
        await ctx.heartbeat()

    async with env.engine() as engine:
        wf = engine.workflow("facts", steps={"look": look})
        run = await wf.start({"i": 1}, meta={"user": "u1"})
        await wf.wait_for(run.id, timeout=10)
    assert facts == {
        "run_id": run.id,
        "step_id": "look",
        "workflow_id": "facts",
        "attempt": 1,
        "input": {"i": 1},
        "meta": {"user": "u1"},
        "key": f"{run.id}:look:charge",
    }
