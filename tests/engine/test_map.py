"""``ctx.map``: a durable in-step map (bounded concurrency, ordered results, coalesced writes)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from streamline_core import ErrorCode, RunStatus, StepConfig, StepContext, ValidationError
from tests.conftest import Env
from tests.helpers import CountingStore, settle_until, stored


async def drive(env: Env, seconds: float = 5.0, rounds: int = 10) -> None:
    """Let fake time pass so retries, timers and lease expiries fire."""
    for _ in range(rounds):
        await env.clock.advance(seconds)
        await env.settle()


async def test_results_come_back_in_input_order_with_at_most_concurrency_at_once(
    env: Env,
) -> None:
    running = 0
    peak = 0

    async def square(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(10 - x):  # later items finish first
            await asyncio.sleep(0)
        running -= 1
        return x * x

    async def step(ctx: StepContext) -> list[Any]:
        return await ctx.map(square, range(10), concurrency=3)

    async with env.engine() as engine:
        wf = engine.workflow("squares", steps={"step": step})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert done.status == RunStatus.DONE
    assert done.output == [x * x for x in range(10)]
    assert peak == 3
    assert done.steps[0].checkpoint is None  # cleared once the step completed


async def test_results_finishing_in_one_loop_iteration_share_one_store_write(env: Env) -> None:
    counting = CountingStore(env.store)
    during: list[int] = []

    async def echo(x: int) -> int:
        return x  # every item finishes in the same event-loop iteration

    async def step(ctx: StepContext) -> list[int]:
        before = counting.calls["transition"]
        out = await ctx.map(echo, list(range(50)))
        during.append(counting.calls["transition"] - before)
        return out

    async with env.engine(store=counting) as engine:
        wf = engine.workflow("echo", steps={"step": step})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert done.output == list(range(50))
    assert during == [1]


async def test_after_a_crash_only_unfinished_items_run_again(env: Env) -> None:
    calls: list[tuple[str, int]] = []
    gate = asyncio.Event()

    def fetcher(worker: str) -> Any:
        async def fetch(x: int) -> str:
            calls.append((worker, x))
            if worker == "A" and x >= 3:
                await gate.wait()  # A dies with items 3.. in flight
            return f"page-{x}"

        async def step(ctx: StepContext) -> list[str]:
            return await ctx.map(fetch, range(6), concurrency=2)

        return step

    a = env.engine(worker_id="A", lease=30)
    await a.start()
    run = await a.workflow("fetch", steps={"step": fetcher("A")}).start()

    def three_saved(r: Any) -> bool:
        return (
            bool(r.steps[0].checkpoint) and len(r.steps[0].checkpoint["maps"]["0"]["results"]) == 3
        )

    await settle_until(env, stored(env, run.id, three_saved))
    mid = await env.store.get(run.id)
    assert mid is not None
    saved = mid.steps[0].checkpoint["maps"]["0"]["results"]
    assert saved == {"0": "page-0", "1": "page-1", "2": "page-2"}
    a._abandon()

    b = env.engine(worker_id="B", lease=30)
    wf = b.workflow("fetch", steps={"step": fetcher("B")})
    await b.start()
    await drive(env, 10, 4)
    done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.DONE
    assert done.output == [f"page-{x}" for x in range(6)]
    assert sorted(x for w, x in calls if w == "B") == [3, 4, 5]  # 0..2 never ran twice


async def test_a_failing_item_fails_the_step_after_the_others_settle_and_a_retry_runs_the_rest(
    env: Env,
) -> None:
    calls: list[int] = []
    settled: list[int] = []

    async def work(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0)  # 0, 1 and 2 are all in flight
        if x == 1 and calls.count(1) == 1:
            raise ConnectionError("item 1 failed")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        settled.append(x)
        return x * 10

    async def step(ctx: StepContext) -> list[int]:
        return await ctx.map(work, [0, 1, 2, 3, 4], concurrency=3)

    async with env.engine() as engine:
        wf = engine.workflow("flaky", steps={"step": StepConfig(step, retries=2, retry_delay=1)})
        run = await wf.start()
        await settle_until(env, stored(env, run.id, lambda r: r.status == RunStatus.WAITING))
        retrying = await wf.get(run.id)
        assert retrying is not None and retrying.status == RunStatus.WAITING
        # 0 and 2 were in flight with 1: they settled and were saved; 3 and 4 never started.
        assert retrying.steps[0].checkpoint["maps"]["0"]["results"] == {"0": 0, "2": 20}
        assert sorted(settled) == [0, 2]
        await drive(env, 1, 3)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == [0, 10, 20, 30, 40]
    assert sorted(calls) == [0, 1, 1, 2, 3, 4]


async def test_map_over_something_not_iterable_is_a_validation_error_and_writes_nothing(
    env: Env,
) -> None:
    counting = CountingStore(env.store)
    seen: list[Any] = []

    async def step(ctx: StepContext) -> None:
        before = (counting.writes, await env.store.get(ctx.run_id))
        try:
            await ctx.map(lambda x: x, 42)  # type: ignore[arg-type]
        except ValidationError as exc:
            seen.append(exc.code)
        after = (counting.writes, await env.store.get(ctx.run_id))
        seen.append(before == after)
        await ctx.map(lambda x: x, [datetime.now()])  # not JSON: refused before anything runs

    async with env.engine(store=counting) as engine:
        wf = engine.workflow("bad", steps={"step": step})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert seen == [ErrorCode.VALIDATION_ERROR, True]
    assert done.status == RunStatus.FAILED
    assert done.error is not None and done.error.details["step_error_code"] == "VALIDATION_ERROR"
    assert done.steps[0].checkpoint is None
    assert done.steps[0].attempts == 1


async def test_a_result_that_is_not_json_fails_the_step(env: Env) -> None:
    async def step(ctx: StepContext) -> list[Any]:
        return await ctx.map(lambda x: {1, 2} if x == 2 else x, [1, 2, 3])

    async with env.engine() as engine:
        wf = engine.workflow("bad-result", steps={"step": step})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert done.status == RunStatus.FAILED
    assert done.error is not None and "result[1]" in done.error.message


async def test_two_maps_in_one_step_keep_their_own_progress(env: Env) -> None:
    calls: list[str] = []

    async def step(ctx: StepContext) -> dict[str, Any]:
        async def up(s: str) -> str:
            calls.append(s)
            return s.upper()

        first = await ctx.map(up, ["a", "b"])
        if ctx.attempt == 1:
            raise ConnectionError("between the maps")
        second = await ctx.map(up, ["c"])
        return {"first": first, "second": second}

    async with env.engine() as engine:
        wf = engine.workflow("two", steps={"step": StepConfig(step, retries=2, retry_delay=1)})
        run = await wf.start()
        await env.settle()
        await drive(env, 1, 3)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == {"first": ["A", "B"], "second": ["C"]}
    assert calls == ["a", "b", "c"]


async def test_the_happy_path_without_these_features_costs_no_extra_write(env: Env) -> None:
    counting = CountingStore(env.store)
    async with env.engine(store=counting) as engine:
        wf = engine.workflow("plain", steps={"a": lambda ctx: 1, "b": lambda ctx: 2})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert done.status == RunStatus.DONE
    assert counting.writes == 1 + 2  # the create, then one commit per step
