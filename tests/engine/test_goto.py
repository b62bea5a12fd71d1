"""``ctx.goto``: jumping back (loops) and forward, bounded by ``max_gotos``."""

from __future__ import annotations

from typing import Any

import pytest

from streamline_core import (
    ErrorCode,
    RunStatus,
    StepContext,
    StepNotFoundError,
    StepStatus,
    ValidationError,
)
from tests.conftest import Env
from tests.helpers import CountingStore, settle_until, stored


async def test_jumping_back_loops_and_keeps_the_context(env: Env) -> None:
    fetched: list[int] = []

    async def fetch(ctx: StepContext) -> dict[str, Any]:
        page = ctx.context.get("page", 0) + 1
        ctx.set("page", page)
        fetched.append(page)
        return {"complete": page >= 3}

    async def check(ctx: StepContext) -> str:
        if not ctx.get_output("fetch")["complete"]:
            await ctx.goto("fetch")
        return "all pages"

    async with env.engine() as engine:
        wf = engine.workflow("pages", steps={"fetch": fetch, "check": check})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert done.status == RunStatus.DONE
    assert fetched == [1, 2, 3]
    assert done.context == {"page": 3}
    assert done.gotos == 2
    assert done.output == "all pages"
    assert [s.status for s in done.steps] == [StepStatus.DONE, StepStatus.DONE]
    assert [s.attempts for s in done.steps] == [1, 1]  # reset by each jump


async def test_jumping_back_resets_the_target_and_every_later_step(env: Env) -> None:
    async def ask(ctx: StepContext) -> str:
        if ctx.context.get("again"):
            await ctx.wait("second pass")
        return "first"

    async def middle(ctx: StepContext) -> str:
        return "middle"

    async def back(ctx: StepContext) -> None:
        ctx.set("again", True)
        await ctx.goto("ask")

    async with env.engine() as engine:
        wf = engine.workflow("reset", steps={"ask": ask, "middle": middle, "back": back})
        run = await wf.start()
        await settle_until(env, stored(env, run.id, lambda r: r.status == RunStatus.WAITING))
        now = await wf.get(run.id)
    assert now is not None
    assert now.status == RunStatus.WAITING and now.current_step_id == "ask"
    assert now.context == {"again": True}
    middle_step, back_step = now.steps[1], now.steps[2]
    for step in (middle_step, back_step):
        assert step.status == StepStatus.PENDING
        assert step.output is None and step.attempts == 0 and step.started_at is None


async def test_jumping_forward_skips_the_steps_between(env: Env) -> None:
    ran: list[str] = []

    def step(name: str, target: str | None = None) -> Any:
        async def handler(ctx: StepContext) -> str:
            ran.append(name)
            if target is not None:
                await ctx.goto(target)
            return name

        return handler

    events: list[Any] = []
    async with env.engine() as engine:
        engine.on("step:skipped")(events.append)
        wf = engine.workflow(
            "forward",
            steps={
                "a": step("a"),
                "b": step("b", "e"),
                "c": step("c"),
                "d": step("d"),
                "e": step("e"),
            },
        )
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert ran == ["a", "b", "e"]
    assert [s.status for s in done.steps] == [
        StepStatus.DONE,
        StepStatus.SKIPPED,
        StepStatus.SKIPPED,
        StepStatus.SKIPPED,
        StepStatus.DONE,
    ]
    assert done.output == "e"
    assert [(e.step_id, e.data) for e in events] == [("b", {"goto": "e"})]


async def test_the_jump_past_max_gotos_fails_the_run(env: Env) -> None:
    jumps = 0

    async def spin(ctx: StepContext) -> None:
        nonlocal jumps
        jumps += 1
        await ctx.goto("spin")

    async with env.engine() as engine:
        wf = engine.workflow("spin", steps={"spin": spin}, max_gotos=5)
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert done.status == RunStatus.FAILED
    assert done.error is not None and done.error.code == ErrorCode.STEP_FAILED
    assert "max_gotos=5" in done.error.message
    assert done.gotos == 5
    assert jumps == 6
    assert done.steps[0].status == StepStatus.FAILED
    assert done.steps[0].attempts == 1  # never retried


async def test_goto_an_unknown_step_is_step_not_found_and_writes_nothing(env: Env) -> None:
    counting = CountingStore(env.store)
    seen: list[Any] = []

    async def lost(ctx: StepContext) -> None:
        before = (counting.writes, await env.store.get(ctx.run_id))
        try:
            await ctx.goto("nowhere")
        except StepNotFoundError as exc:
            seen.append(exc.code)
            seen.append(before == (counting.writes, await env.store.get(ctx.run_id)))
            raise

    async with env.engine(store=counting) as engine:
        wf = engine.workflow("lost", steps={"lost": lost})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert seen == [ErrorCode.STEP_NOT_FOUND, True]
    assert done.status == RunStatus.FAILED
    assert done.steps[0].attempts == 1  # a wrong step id is not worth a retry
    assert done.error is not None and done.error.details["step_error_code"] == "STEP_NOT_FOUND"


async def test_rewind_resets_the_goto_count(env: Env) -> None:
    async def spin(ctx: StepContext) -> None:
        await ctx.goto("spin")

    async with env.engine() as engine:
        wf = engine.workflow("spin", steps={"spin": spin}, max_gotos=2)
        run = await wf.start()
        failed = await wf.wait_for(run.id, timeout=10)
        assert failed.gotos == 2
        rewound = await wf.rewind_to(run.id, "spin")
        assert rewound.gotos == 0
        again = await wf.wait_for(run.id, timeout=10)
    assert again.status == RunStatus.FAILED and again.gotos == 2


def test_max_gotos_must_be_a_non_negative_integer() -> None:
    from streamline_core import Engine
    from streamline_testing import InMemoryStore

    engine = Engine(InMemoryStore(), load_entry_point_plugins=False)
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(ValidationError):
            engine.workflow(f"bad-{bad}", steps={"a": lambda ctx: 1}, max_gotos=bad)  # type: ignore[arg-type]
