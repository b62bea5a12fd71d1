"""Debounce: a burst of starts with one key becomes one run that sees the latest input."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from streamline_core import Debounce, ErrorCode, RunStatus, StepContext, ValidationError
from streamline_core._runtime.debouncing import not_begun
from streamline_core.store import RunQuery
from tests.conftest import Env

ACTIVE = (RunStatus.RUNNING, RunStatus.WAITING)


def by_account(value: Any) -> Any:
    return value["account"]


def recorder(seen: list[Any]) -> Any:
    async def sync(ctx: StepContext) -> Any:
        seen.append(ctx.input)
        return ctx.input

    return sync


async def active_runs(env: Env, workflow: str) -> list[Any]:
    page = await env.store.find(RunQuery(workflow_id=workflow, status=ACTIVE, limit=None))
    return page.items


async def test_a_start_folds_into_the_pending_run_and_pushes_it_back(env: Env) -> None:
    seen: list[Any] = []
    async with env.engine() as engine:
        wf = engine.workflow(
            "sync", steps={"sync": recorder(seen)}, debounce=Debounce(10, key=by_account)
        )
        t0 = env.clock.now()
        first = await wf.start({"account": "a", "v": 1})
        assert first.next_run_at == t0 + timedelta(seconds=10)
        await env.clock.advance(5)
        second = await wf.start({"account": "a", "v": 2})
        assert second.id == first.id
        assert second.input == {"account": "a", "v": 2}
        assert second.next_run_at == t0 + timedelta(seconds=15)
        await env.clock.advance(6)  # t0 + 11: the first start's due time has passed
        await env.settle()
        assert seen == []
        await env.clock.advance(5)
        done = await wf.wait_for(first.id, timeout=10)
    assert done.status == RunStatus.DONE
    assert seen == [{"account": "a", "v": 2}]


async def test_other_keys_make_other_runs(env: Env) -> None:
    engine = env.engine()
    wf = engine.workflow("sync", steps={"s": lambda ctx: 1}, debounce=Debounce(10, by_account))
    a = await wf.start({"account": "a"})
    b = await wf.start({"account": "b"})
    again = await wf.start({"account": "a", "v": 2})
    assert a.id != b.id
    assert again.id == a.id


async def test_no_key_means_one_bucket_per_workflow(env: Env) -> None:
    engine = env.engine()
    wf = engine.workflow("sync", steps={"s": lambda ctx: 1}, debounce=Debounce(3))
    runs = [await wf.start({"n": n}) for n in range(3)]
    assert len({r.id for r in runs}) == 1
    assert runs[-1].input == {"n": 2}


async def test_max_wait_caps_how_far_a_burst_pushes_the_run(env: Env) -> None:
    seen: list[Any] = []
    async with env.engine() as engine:
        wf = engine.workflow(
            "sync",
            steps={"sync": recorder(seen)},
            debounce=Debounce(timedelta(seconds=10), by_account, max_wait=25),
        )
        t0 = env.clock.now()
        run = await wf.start({"account": "a", "v": 0})
        for v in (1, 2, 3):
            await env.clock.advance(8)
            run = await wf.start({"account": "a", "v": v})
        assert run.next_run_at == t0 + timedelta(seconds=25)  # not t0 + 34
        await env.clock.advance(1)  # t0 + 25
        await wf.wait_for(run.id, timeout=10)
    assert seen == [{"account": "a", "v": 3}]


async def test_a_start_after_the_run_began_makes_a_new_run(env: Env) -> None:
    async def ask(ctx: StepContext) -> None:
        await ctx.wait("approve?")

    async with env.engine() as engine:
        wf = engine.workflow("sync", steps={"ask": ask}, debounce=Debounce(5, by_account))
        first = await wf.start({"account": "a"})
        await env.clock.advance(5)
        await env.settle()
        assert (await wf.get(first.id)).status == RunStatus.WAITING  # type: ignore[union-attr]
        second = await wf.start({"account": "a", "v": 2})
        third = await wf.start({"account": "a", "v": 3})
    assert second.id != first.id
    assert third.id == second.id
    assert third.input == {"account": "a", "v": 3}
    kept = await env.store.get(first.id)
    assert kept is not None and kept.input == {"account": "a"}


async def test_a_start_while_the_first_step_executes_leaves_that_step_alone(env: Env) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(ctx: StepContext) -> Any:
        entered.set()
        await release.wait()
        return ctx.input["v"]

    async with env.engine() as engine:
        wf = engine.workflow(
            "sync", steps={"slow": slow, "end": lambda ctx: 0}, debounce=Debounce(5, by_account)
        )
        first = await wf.start({"account": "a", "v": 1})
        await env.clock.advance(5)
        await asyncio.wait_for(entered.wait(), 10)
        second = await wf.start({"account": "a", "v": 2})
        release.set()
        done = await wf.wait_for(first.id, timeout=10)
    assert second.id != first.id
    assert done.status == RunStatus.DONE
    assert done.steps[0].output == 1


async def test_racing_starts_from_two_engines_make_one_pending_run(env: Env) -> None:
    engines = [env.engine(), env.engine()]
    workflows = [
        e.workflow("sync", steps={"s": lambda ctx: 1}, debounce=Debounce(10, by_account))
        for e in engines
    ]
    runs = await asyncio.gather(
        *(workflows[n % 2].start({"account": "a", "v": n}) for n in range(8))
    )
    assert len({r.id for r in runs}) == 1
    (pending,) = await active_runs(env, "sync")
    assert pending.input["v"] in range(8)


async def test_a_failing_key_function_stores_nothing(env: Env) -> None:
    engine = env.engine()
    wf = engine.workflow("sync", steps={"s": lambda ctx: 1}, debounce=Debounce(10, by_account))
    for bad in ({"other": 1}, {"account": None}, {"account": ""}):
        with pytest.raises(ValidationError) as caught:
            await wf.start(bad)
        assert caught.value.code == ErrorCode.VALIDATION_ERROR
    assert await active_runs(env, "sync") == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: Debounce(0),
        lambda: Debounce(-1),
        lambda: Debounce("5"),  # type: ignore[arg-type]
        lambda: Debounce(float("inf")),
        lambda: Debounce(5, key="account"),  # type: ignore[arg-type]
        lambda: Debounce(5, max_wait=4),
        lambda: Debounce(5, max_wait=True),
    ],
)
def test_bad_debounce_values_are_refused(make: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        make()
    assert caught.value.code == ErrorCode.VALIDATION_ERROR


async def test_debounce_must_be_a_debounce(env: Env) -> None:
    engine = env.engine()
    with pytest.raises(ValidationError):
        engine.workflow("sync", steps={"s": lambda ctx: 1}, debounce=5)  # type: ignore[arg-type]
    assert "sync" not in engine.workflow_names


async def test_starts_racing_a_claim_never_leave_two_pending_runs(env: Env) -> None:
    engines = [env.engine(), env.engine()]
    workflows = [
        e.workflow("sync", steps={"s": lambda ctx: 1}, debounce=Debounce(10, by_account))
        for e in engines
    ]
    await workflows[0].start({"account": "a", "v": -1})
    await env.clock.advance(10)
    *_, claimed = await asyncio.gather(
        *(workflows[n % 2].start({"account": "a", "v": n}) for n in range(6)),
        env.store.claim("w", env.clock.now(), 30, 10, {"sync"}),
    )
    runs = await active_runs(env, "sync")
    pending = [r for r in runs if not_begun(r)]
    assert len(pending) <= 1
    assert len(claimed) <= 1
    assert len(runs) == len(pending) + len(claimed)


async def test_a_fold_takes_the_new_inputs_concurrency_key(env: Env) -> None:
    from streamline_core import Concurrency

    seen: list[Any] = []
    async with env.engine() as engine:
        wf = engine.workflow(
            "regional",
            steps={"sync": recorder(seen)},
            debounce=Debounce(10, key=by_account),
            concurrency=Concurrency(1, key=lambda value: value["region"]),
        )
        first = await wf.start({"account": "a", "region": "eu"})
        assert first.concurrency_key == "eu"
        second = await wf.start({"account": "a", "region": "us"})
        assert second.id == first.id
        assert second.concurrency_key == "us" and second.concurrency_limit == 1
        await env.clock.advance(11)
        done = await wf.wait_for(first.id, timeout=30)
    assert done.status == RunStatus.DONE
    assert seen == [{"account": "a", "region": "us"}]
