"""``ctx.checkpoint`` / ``ctx.last_checkpoint``: step progress kept across retries and crashes."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from streamline_core import (
    ErrorCode,
    RunStatus,
    StepConfig,
    StepContext,
    StepStatus,
    ValidationError,
)
from tests.conftest import Env
from tests.helpers import CountingStore, settle_until, stored


async def drive(env: Env, seconds: float = 5.0, rounds: int = 10) -> None:
    """Let fake time pass so retries, timers and lease expiries fire."""
    for _ in range(rounds):
        await env.clock.advance(seconds)
        await env.settle()


async def test_last_checkpoint_is_none_at_first_and_cleared_when_the_step_completes(
    env: Env,
) -> None:
    seen: list[Any] = []

    async def crawl(ctx: StepContext) -> int:
        seen.append(ctx.last_checkpoint)
        await ctx.checkpoint({"page": 1})
        seen.append(ctx.last_checkpoint)
        return 1

    async with env.engine() as engine:
        wf = engine.workflow("crawl", steps={"crawl": crawl})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert seen == [None, {"page": 1}]
    assert done.status == RunStatus.DONE
    assert done.steps[0].checkpoint is None


async def test_a_retry_resumes_from_the_last_checkpoint(env: Env) -> None:
    pages: list[int] = []

    async def crawl(ctx: StepContext) -> int:
        page = ctx.last_checkpoint or 0
        while page < 5:
            pages.append(page)
            page += 1
            await ctx.checkpoint(page)
            if page == 3 and ctx.attempt == 1:
                raise ConnectionError("network blip")
        return page

    async with env.engine() as engine:
        wf = engine.workflow("crawl", steps={"crawl": StepConfig(crawl, retries=2, retry_delay=1)})
        run = await wf.start()
        await settle_until(env, stored(env, run.id, lambda r: r.status == RunStatus.WAITING))
        waiting = await wf.get(run.id)
        assert waiting is not None and waiting.status == RunStatus.WAITING
        assert waiting.steps[0].checkpoint == {"value": 3}  # kept across the attempt
        await drive(env, 1, 3)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == 5
    assert pages == [0, 1, 2, 3, 4]  # pages 0..2 never crawled twice
    assert done.steps[0].checkpoint is None


async def test_a_crash_resumes_from_the_last_checkpoint_on_another_worker(env: Env) -> None:
    gate = asyncio.Event()
    pages: list[tuple[str, int]] = []

    def crawler(worker: str) -> Any:
        async def crawl(ctx: StepContext) -> int:
            page = ctx.last_checkpoint or 0
            while page < 4:
                pages.append((worker, page))
                page += 1
                await ctx.checkpoint(page)
                if worker == "A" and page == 2:
                    await gate.wait()  # A dies here
            return page

        return crawl

    a = env.engine(worker_id="A", lease=30)
    await a.start()
    run = await a.workflow("crawl", steps={"crawl": crawler("A")}).start()
    await settle_until(env, stored(env, run.id, lambda r: r.steps[0].checkpoint == {"value": 2}))
    a._abandon()
    b = env.engine(worker_id="B", lease=30)
    wf = b.workflow("crawl", steps={"crawl": crawler("B")})
    await b.start()
    await drive(env, 10, 4)
    done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.DONE
    assert pages == [("A", 0), ("A", 1), ("B", 2), ("B", 3)]
    assert done.output == 4


async def test_rewind_clears_the_checkpoint(env: Env) -> None:
    async def crawl(ctx: StepContext) -> None:
        await ctx.checkpoint("half way")
        await ctx.wait("look")

    async with env.engine() as engine:
        wf = engine.workflow("crawl", steps={"crawl": crawl, "after": lambda ctx: None})
        run = await wf.start()
        await settle_until(env, stored(env, run.id, lambda r: r.status == RunStatus.WAITING))
        waiting = await wf.get(run.id)
        assert waiting is not None and waiting.steps[0].checkpoint == {"value": "half way"}
        await wf.pause(run.id)
        rewound = await wf.rewind_to(run.id, "crawl")
    assert rewound.steps[0].checkpoint is None
    assert rewound.steps[0].status == StepStatus.PENDING


async def test_a_checkpoint_is_one_store_write(env: Env) -> None:
    counting = CountingStore(env.store)

    async def step(ctx: StepContext) -> str:
        before = counting.writes
        await ctx.checkpoint([1, 2, 3])
        assert counting.writes == before + 1
        return "ok"

    async with env.engine(store=counting) as engine:
        wf = engine.workflow("one", steps={"step": step})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert done.status == RunStatus.DONE


async def test_a_checkpoint_that_is_not_json_fails_the_step_and_writes_nothing(env: Env) -> None:
    counting = CountingStore(env.store)
    writes: list[int] = []

    async def step(ctx: StepContext) -> None:
        writes.append(counting.writes)
        try:
            await ctx.checkpoint({"when": datetime.now()})
        finally:
            writes.append(counting.writes)

    async with env.engine(store=counting) as engine:
        wf = engine.workflow("bad", steps={"step": step})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert writes[0] == writes[1]
    assert done.status == RunStatus.FAILED
    assert done.error is not None and done.error.details["step_error_code"] == "VALIDATION_ERROR"
    assert done.steps[0].checkpoint is None
    assert done.steps[0].attempts == 1  # a ValidationError is not retried


async def test_map_and_checkpoint_in_one_step_is_a_validation_error(env: Env) -> None:
    errors: list[ValidationError] = []

    async def step(ctx: StepContext) -> None:
        await ctx.checkpoint(1)
        try:
            await ctx.map(lambda x: x, [1, 2])
        except ValidationError as exc:
            errors.append(exc)
            raise

    async with env.engine() as engine:
        wf = engine.workflow("both", steps={"step": step})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert len(errors) == 1 and errors[0].code == ErrorCode.VALIDATION_ERROR
    assert done.status == RunStatus.FAILED
    assert done.steps[0].checkpoint == {"value": 1}


async def test_a_checkpoint_after_the_run_was_cancelled_is_not_written(env: Env) -> None:
    reached = asyncio.Event()
    go_on = asyncio.Event()
    outcome: list[str] = []

    async def step(ctx: StepContext) -> None:
        reached.set()
        await go_on.wait()
        try:
            await ctx.checkpoint("late")
        except BaseException as exc:  # the signal stops the handler
            outcome.append(type(exc).__name__)
            raise

    async with env.engine() as engine:
        wf = engine.workflow("late", steps={"step": step})
        run = await wf.start()
        await asyncio.wait_for(reached.wait(), 5)
        await wf.cancel(run.id)
        go_on.set()
        await env.settle()
        final = await wf.get(run.id)
    assert final is not None and final.status == RunStatus.CANCELLED
    assert final.steps[0].checkpoint is None


async def test_a_zombie_workers_checkpoint_is_fenced_after_a_takeover(env: Env) -> None:
    gate = asyncio.Event()
    stopped: list[str] = []

    async def zombie(ctx: StepContext) -> str:
        await ctx.checkpoint("A: 1")
        await gate.wait()
        try:
            await ctx.checkpoint("A: 2")  # B owns the run by now
        except BaseException as exc:
            stopped.append(type(exc).__name__)
            raise
        return "A"

    async def rescuer(ctx: StepContext) -> str:
        assert ctx.last_checkpoint == "A: 1"
        await ctx.checkpoint("B: 2")
        await gate.wait()
        return "B"

    a = env.engine(worker_id="A", lease=30)
    await a.start()
    run = await a.workflow("fenced", steps={"step": zombie}).start()
    await settle_until(env, stored(env, run.id, lambda r: r.steps[0].checkpoint is not None))
    assert a._worker is not None
    await a._worker.stop()  # A stops heartbeating: its process is frozen, not dead
    await a._heartbeats.stop()
    b = env.engine(worker_id="B", lease=30)
    wf = b.workflow("fenced", steps={"step": rescuer})
    await b.start()
    await env.clock.advance(31)
    for _ in range(100):  # until B has taken the run over and saved its checkpoint
        await env.settle()
        mid = await env.store.get(run.id)
        assert mid is not None
        if mid.steps[0].checkpoint == {"value": "B: 2"}:
            break
    assert mid.lease is not None and mid.lease.owner == "B"
    assert mid.steps[0].checkpoint == {"value": "B: 2"}
    gate.set()  # both go on; A's checkpoint must not land
    done = await wf.wait_for(run.id, timeout=10)

    async def zombie_stopped() -> bool:
        return bool(stopped)

    await settle_until(env, zombie_stopped)
    assert stopped == ["LeaseLostSignal"]
    final = await env.store.get(run.id)
    assert final is not None and final.revision == done.revision  # A wrote nothing
    assert done.output == "B"
