"""Triggers and cancel_on: broadcast events start and cancel runs through the normal paths."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from streamline_core import Debounce, ErrorCode, Event, RunStatus, StepContext, ValidationError
from streamline_core.store import RunQuery
from tests.conftest import Env


class Order(pydantic.BaseModel):
    order_id: int


async def ask(ctx: StepContext) -> None:
    await ctx.wait("hold")


async def listen(ctx: StepContext) -> None:
    await ctx.wait_for("order.placed")


async def runs_of(env: Env, workflow: str) -> list[Any]:
    page = await env.store.find(RunQuery(workflow_id=workflow, sort="created_at", limit=None))
    return page.items


def account_context(value: Any) -> dict[str, Any]:
    return {"account_id": value["account_id"]}


async def test_a_broadcast_starts_a_run_with_its_data(env: Env) -> None:
    engine = env.engine()
    engine.workflow("fulfil", steps={"s": lambda ctx: 1}, trigger="order.placed")
    resumed = await engine.emit_event("order.placed", {"order_id": 7})
    assert resumed == 0  # trigger starts are not counted: it counts resumed runs
    (run,) = await runs_of(env, "fulfil")
    assert run.input == {"order_id": 7}
    assert run.meta == {"trigger_event": "order.placed"}
    assert run.status == RunStatus.RUNNING


async def test_a_triggered_run_executes_on_a_worker(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow("fulfil", steps={"s": lambda ctx: ctx.input["n"] * 2}, trigger="go")
        await engine.emit_event("go", {"n": 21})
        (run,) = await runs_of(env, "fulfil")
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == 42


async def test_an_idempotency_key_makes_a_redelivered_event_start_no_second_run(env: Env) -> None:
    engine = env.engine()
    engine.workflow("fulfil", steps={"s": ask}, trigger="order.placed")
    engine.workflow("notify", steps={"s": ask}, trigger="order.placed")
    for _ in range(2):
        await engine.emit_event("order.placed", {"order_id": 7}, idempotency_key="evt-1")
    (fulfil,) = await runs_of(env, "fulfil")
    (notify,) = await runs_of(env, "notify")
    assert fulfil.idempotency_key == notify.idempotency_key == "evt-1"
    await engine.emit_event("order.placed", {"order_id": 8})
    await engine.emit_event("order.placed", {"order_id": 8})
    assert len(await runs_of(env, "fulfil")) == 3  # no key: every delivery starts a run


async def test_a_trigger_that_cannot_start_is_reported_and_delivery_goes_on(env: Env) -> None:
    errors: list[Event] = []
    async with env.engine() as engine:
        engine.on("engine:error")(errors.append)
        waiting = engine.workflow("waiter", steps={"w": listen, "end": lambda ctx: ctx.input})
        engine.workflow(
            "strict", steps={"s": lambda ctx: 1}, input_model=Order, trigger="order.placed"
        )
        engine.workflow("loose", steps={"s": ask}, trigger="order.placed")
        waiter = await waiting.start("me")
        await env.settle()
        resumed = await engine.emit_event("order.placed", {"order_id": "not a number"})
        done = await waiting.wait_for(waiter.id, timeout=10)
    assert resumed == 1
    assert done.status == RunStatus.DONE
    assert await runs_of(env, "strict") == []
    assert len(await runs_of(env, "loose")) == 1
    (error,) = errors
    assert isinstance(error.error, ValidationError)
    assert error.workflow_id == "strict"
    assert error.data == {"trigger": "order.placed", "workflow": "strict"}


async def test_a_targeted_event_starts_nothing(env: Env) -> None:
    engine = env.engine()
    holder = engine.workflow("holder", steps={"s": ask})
    engine.workflow("fulfil", steps={"s": ask}, trigger="go")
    run = await holder.start()
    assert await engine.emit_event("go", 1, run_id=run.id) == 0
    assert await runs_of(env, "fulfil") == []


async def test_trigger_starts_are_in_the_emitting_engines_tenant(env: Env) -> None:
    engine = env.engine(tenant_id="t1")
    engine.workflow("fulfil", steps={"s": ask}, trigger="go")
    await engine.emit_event("go", {"n": 1}, idempotency_key="k")
    other = env.engine(tenant_id="t2")
    other.workflow("fulfil", steps={"s": ask}, trigger="go")
    await other.emit_event("go", {"n": 1}, idempotency_key="k")  # keys are per tenant
    runs = await runs_of(env, "fulfil")
    assert sorted(r.tenant_id for r in runs) == ["t1", "t2"]


async def test_cancel_on_cancels_the_matching_run_only(env: Env) -> None:
    engine = env.engine()
    wf = engine.workflow(
        "sync",
        steps={"s": ask},
        context=account_context,
        cancel_on={"account.deleted": "account_id"},
    )
    other = engine.workflow("other", steps={"s": ask}, context=account_context)
    a1 = await wf.start({"account_id": "a1"})
    a2 = await wf.start({"account_id": "a2"})
    numeric = await wf.start({"account_id": 1})
    bystander = await other.start({"account_id": "a1"})
    await engine.emit_event("account.deleted", {"account_id": "a1"})
    await engine.emit_event("account.deleted", {"account_id": "1"})  # "1" is not 1
    await engine.emit_event("account.deleted", {"other": "a2"})
    await engine.emit_event("account.deleted", ["a2"])
    statuses = {r.id: (await engine.runs.get(r.id)).status for r in (a1, a2, numeric, bystander)}  # type: ignore[union-attr]
    assert statuses == {
        a1.id: RunStatus.CANCELLED,
        a2.id: RunStatus.RUNNING,
        numeric.id: RunStatus.RUNNING,
        bystander.id: RunStatus.RUNNING,
    }


async def test_cancel_on_stops_a_waiting_run_on_a_worker(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow(
            "sync", steps={"s": ask}, context=account_context, cancel_on={"gone": "account_id"}
        )
        run = await wf.start({"account_id": "a"})
        await env.settle()
        assert (await wf.get(run.id)).status == RunStatus.WAITING  # type: ignore[union-attr]
        await engine.emit_event("gone", {"account_id": "a"})
        ended = await wf.wait_for(run.id, timeout=10)
    assert ended.status == RunStatus.CANCELLED


async def test_cancel_on_respects_the_tenant_scope(env: Env) -> None:
    mine, theirs = env.engine(tenant_id="t1"), env.engine(tenant_id="t2")
    workflows = [
        e.workflow(
            "sync", steps={"s": ask}, context=account_context, cancel_on={"gone": "account_id"}
        )
        for e in (mine, theirs)
    ]
    r1 = await workflows[0].start({"account_id": "a"})
    r2 = await workflows[1].start({"account_id": "a"})
    await mine.emit_event("gone", {"account_id": "a"})
    assert (await env.store.get(r1.id)).status == RunStatus.CANCELLED  # type: ignore[union-attr]
    assert (await env.store.get(r2.id)).status == RunStatus.RUNNING  # type: ignore[union-attr]


async def test_an_event_cancels_before_it_starts(env: Env) -> None:
    engine = env.engine()
    wf = engine.workflow(
        "sync",
        steps={"s": ask},
        context=account_context,
        trigger="account.changed",
        cancel_on={"account.changed": "account_id"},
    )
    old = await wf.start({"account_id": "a"})
    await engine.emit_event("account.changed", {"account_id": "a"})
    statuses = {r.id: r.status for r in await runs_of(env, "sync")}
    assert statuses.pop(old.id) == RunStatus.CANCELLED
    assert list(statuses.values()) == [RunStatus.RUNNING]


@pytest.mark.parametrize(
    "options",
    [
        {"trigger": 5},
        {"trigger": ""},
        {"cancel_on": ["account.deleted"]},
        {"cancel_on": {}},
        {"cancel_on": {"account.deleted": 3}},
        {"cancel_on": {"": "account_id"}},
        {"cancel_on": {"account.deleted": "a.b"}},
    ],
)
async def test_bad_trigger_and_cancel_on_are_refused(env: Env, options: dict[str, Any]) -> None:
    engine = env.engine()
    with pytest.raises(ValidationError) as caught:
        engine.workflow("sync", steps={"s": ask}, **options)
    assert caught.value.code == ErrorCode.VALIDATION_ERROR
    assert "sync" not in engine.workflow_names


async def test_a_bad_idempotency_key_is_refused_before_anything_happens(env: Env) -> None:
    engine = env.engine()
    engine.workflow("fulfil", steps={"s": ask}, trigger="go")
    with pytest.raises(ValidationError):
        await engine.emit_event("go", 1, idempotency_key=5)  # type: ignore[arg-type]
    assert await runs_of(env, "fulfil") == []


async def test_equal_options_re_register_and_different_ones_are_refused(env: Env) -> None:
    engine = env.engine()

    def define(**options: Any) -> Any:
        return engine.workflow("sync", steps={"s": ask}, **options)

    first = define(trigger="go", cancel_on={"gone": "id"}, debounce=Debounce(5))
    assert define(trigger="go", cancel_on={"gone": "id"}, debounce=Debounce(5.0)) is first
    for other in (
        {"trigger": "went", "cancel_on": {"gone": "id"}, "debounce": Debounce(5)},
        {"trigger": "go", "cancel_on": {"gone": "key"}, "debounce": Debounce(5)},
        {"trigger": "go", "cancel_on": {"gone": "id"}, "debounce": Debounce(6)},
    ):
        with pytest.raises(ValidationError):
            define(**other)


async def test_triggered_starts_are_debounced(env: Env) -> None:
    engine = env.engine()
    engine.workflow(
        "sync",
        steps={"s": ask},
        trigger="account.changed",
        debounce=Debounce(10, key=lambda data: data["account_id"]),
    )
    for v in range(3):
        await engine.emit_event("account.changed", {"account_id": "a", "v": v})
    (run,) = await runs_of(env, "sync")
    assert run.input == {"account_id": "a", "v": 2}
