"""Suspension: wait & resume, events and the mailbox, sleep, timeouts, hooks."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from streamline_core import (
    ErrorCode,
    InvalidStateError,
    RunStatus,
    StepContext,
    StepStatus,
    WorkflowNotFoundError,
    create_hook,
    get_wait_resolution,
    resume_hook,
)
from tests.conftest import Env


def approval_steps(after: list[str]) -> dict[str, Any]:
    async def submit(ctx: StepContext) -> dict[str, bool]:
        return {"submitted": True}

    async def wait(ctx: StepContext) -> None:
        await ctx.wait("Please approve", {"request": ctx.context.get("data")})
        after.append("code after wait ran")  # never

    async def execute(ctx: StepContext) -> dict[str, Any]:
        return {"done": True, "approved": ctx.get_output("wait")}

    return {"submit": submit, "wait": wait, "execute": execute}


async def test_wait_suspends_and_resume_completes_the_step_with_the_payload(env: Env) -> None:
    after: list[str] = []
    async with env.engine() as engine:
        wf = engine.workflow("approval", steps=approval_steps(after), context=lambda i: {"data": i})
        run = await wf.start({"amount": 5})
        await env.settle()
        waiting = await wf.get(run.id)
        assert waiting is not None
        assert waiting.status == RunStatus.WAITING
        assert waiting.wait is not None
        assert waiting.wait.kind == "human"
        assert waiting.wait.reason == "Please approve"
        assert waiting.wait.data == {"request": {"amount": 5}}
        assert waiting.lease is None
        assert waiting.steps[1].status == StepStatus.WAITING
        resumed = await wf.resume(run.id, {"approved": True, "by": "admin"})
        assert resumed.status == RunStatus.RUNNING
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == {"done": True, "approved": {"approved": True, "by": "admin"}}
    assert done.steps[1].output == {"approved": True, "by": "admin"}
    assert after == []


async def test_resume_errors_have_codes(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow("approval", steps=approval_steps([]))
        other = engine.workflow("other", steps={"a": lambda ctx: 1})
        with pytest.raises(WorkflowNotFoundError) as nf:
            await wf.resume("nope")
        assert nf.value.code == ErrorCode.WORKFLOW_NOT_FOUND
        assert nf.value.status == 404
        finished = await other.wait_for((await other.start()).id, timeout=10)
        with pytest.raises(WorkflowNotFoundError):
            await wf.resume(finished.id)  # a run of another workflow is "not found"
        with pytest.raises(InvalidStateError) as bad:
            await other.resume(finished.id)
        assert bad.value.code == ErrorCode.INVALID_STATE
        assert bad.value.status == 400


async def test_two_concurrent_resumes_exactly_one_wins(env: Env) -> None:
    resumed_events: list[str] = []
    async with env.engine() as engine:
        engine.on("workflow:resumed")(lambda e: resumed_events.append(e.run_id or ""))
        wf = engine.workflow("approval", steps=approval_steps([]))
        run = await wf.start()
        await env.settle()
        results = await asyncio.gather(
            wf.resume(run.id, "a"), wf.resume(run.id, "b"), return_exceptions=True
        )
        await wf.wait_for(run.id, timeout=10)
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, InvalidStateError)]
    assert len(wins) == 1
    assert len(losses) == 1
    assert resumed_events == [run.id]


async def test_wait_timeout_completes_with_a_wait_resolution(env: Env) -> None:
    async def ask(ctx: StepContext) -> None:
        await ctx.wait("approve within an hour", timeout=3600)

    async def decide(ctx: StepContext) -> str:
        res = get_wait_resolution(ctx.get_output("ask"))
        return "timed out" if res and res.kind == "timeout" else "answered"

    async with env.engine() as engine:
        wf = engine.workflow("timeout", steps={"ask": ask, "decide": decide})
        timed = await wf.start()
        answered = await wf.start()
        await env.settle()
        await wf.resume(answered.id, {"ok": True})
        await env.clock.advance(3601)
        done = await wf.wait_for(timed.id, timeout=10)
        other = await wf.wait_for(answered.id, timeout=10)
    assert done.output == "timed out"
    assert get_wait_resolution(done.steps[0].output) is not None
    assert other.output == "answered"
    assert get_wait_resolution({"ok": True}) is None


async def test_sleep_is_a_durable_timer_driven_by_the_clock(env: Env) -> None:
    async def nap(ctx: StepContext) -> None:
        await ctx.sleep(3600)

    async with env.engine() as engine:
        wf = engine.workflow(
            "delayed", steps={"start": lambda ctx: 1, "nap": nap, "end": lambda ctx: 2}
        )
        run = await wf.start()
        await env.settle()
        sleeping = await wf.get(run.id)
        assert sleeping is not None
        assert sleeping.status == RunStatus.WAITING
        assert sleeping.wait is not None
        assert sleeping.wait.kind == "timer"
        assert sleeping.next_run_at == env.clock.now() + timedelta(hours=1)
        await env.clock.advance(1800)
        await env.settle()
        assert (await wf.get(run.id)).status == RunStatus.WAITING  # type: ignore[union-attr]
        await env.clock.advance(1800)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.DONE
    assert done.steps[1].output is None
    assert done.output == 2


async def test_wait_for_event_resumes_with_the_event_data(env: Env) -> None:
    async def pay(ctx: StepContext) -> None:
        await ctx.wait_for("payment.received")

    async with env.engine() as engine:
        wf = engine.workflow("pay", steps={"pay": pay, "ship": lambda ctx: ctx.get_output("pay")})
        a = await wf.start()
        b = await wf.start()
        await env.settle()
        assert await engine.emit_event("nobody.listens", {}) == 0
        n = await engine.emit_event("payment.received", {"amount": 10})
        assert n == 2
        done_a = await wf.wait_for(a.id, timeout=10)
        done_b = await wf.wait_for(b.id, timeout=10)
    assert done_a.output == {"amount": 10}
    assert done_b.output == {"amount": 10}


async def test_a_targeted_event_before_the_wait_is_kept_in_the_mailbox(env: Env) -> None:
    gate = asyncio.Event()

    async def first(ctx: StepContext) -> None:
        await gate.wait()

    async def later(ctx: StepContext) -> None:
        await ctx.wait_for("approved")

    async with env.engine() as engine:
        wf = engine.workflow(
            "mail", steps={"first": first, "later": later, "end": lambda c: c.get_output("later")}
        )
        run = await wf.start()
        await env.settle()
        assert await engine.emit_event("approved", {"by": "x"}, run_id=run.id) == 0
        stored = await wf.get(run.id)
        assert stored is not None
        assert [m.name for m in stored.mailbox] == ["approved"]
        gate.set()
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == {"by": "x"}
    assert done.mailbox == []


async def test_broadcast_events_are_never_buffered(env: Env) -> None:
    gate = asyncio.Event()

    async def first(ctx: StepContext) -> None:
        await gate.wait()

    async def later(ctx: StepContext) -> None:
        await ctx.wait_for("go")

    async with env.engine() as engine:
        wf = engine.workflow("bc", steps={"first": first, "later": later})
        run = await wf.start()
        await env.settle()
        assert await engine.emit_event("go") == 0
        gate.set()
        await env.settle()
        stored = await wf.get(run.id)
        assert stored is not None
        assert stored.status == RunStatus.WAITING
        assert stored.mailbox == []
        assert await engine.emit_event("go", run_id=run.id) == 1
        await wf.wait_for(run.id, timeout=10)


async def test_targeted_event_to_unknown_or_finished_run(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow("t", steps={"a": lambda ctx: 1})
        with pytest.raises(WorkflowNotFoundError):
            await engine.emit_event("x", run_id="missing")
        done = await wf.wait_for((await wf.start()).id, timeout=10)
        assert await engine.emit_event("x", run_id=done.id) == 0


async def test_hooks_resume_once_with_the_token(env: Env) -> None:
    tokens: list[str] = []

    async def request(ctx: StepContext) -> None:
        hook = create_hook(ctx, "awaiting-approval")
        assert hook.path == f"/hooks/{hook.token}"
        tokens.append(hook.token)
        await ctx.wait("Waiting for approval", hook=hook)

    async with env.engine() as engine:
        wf = engine.workflow(
            "hooked", steps={"request": request, "process": lambda c: c.get_output("request")}
        )
        run = await wf.start()
        await env.settle()
        stored = await wf.get(run.id)
        assert stored is not None
        assert stored.wait is not None
        assert stored.wait.hook_token_hash is not None
        assert tokens[0] not in stored.model_dump_json()  # only the hash is stored
        for wrong in (
            "",
            "short",
            "x" * 43,
            tokens[0][:-1] + ("A" if tokens[0][-1] != "A" else "B"),
        ):
            with pytest.raises(WorkflowNotFoundError) as err:
                await resume_hook(wrong, {"approved": True}, engine=engine)
            assert err.value.status == 404
        result = await resume_hook(tokens[0], {"approved": True}, engine=engine)
        assert result.run_id == run.id
        done = await wf.wait_for(run.id, timeout=10)
        with pytest.raises(WorkflowNotFoundError):
            await resume_hook(tokens[0], {"approved": False}, engine=engine)
    assert done.output == {"approved": True}


async def test_create_hook_then_plain_wait_uses_the_hook(env: Env) -> None:
    tokens: list[str] = []

    async def request(ctx: StepContext) -> None:
        tokens.append(create_hook(ctx).token)
        await ctx.wait("Waiting")

    async with env.engine() as engine:
        wf = engine.workflow("hooked2", steps={"request": request})
        run = await wf.start()
        await env.settle()
        await resume_hook(tokens[0], "ok", engine=engine)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == "ok"


async def test_a_hook_used_before_its_wait_is_stored_still_resumes(env: Env) -> None:
    handed_out: asyncio.Queue[str] = asyncio.Queue()

    async def request(ctx: StepContext) -> None:
        hook = create_hook(ctx, "fast webhook")
        await handed_out.put(hook.token)  # the webhook may fire before the wait commits
        await ctx.wait("Waiting", hook=hook)

    async with env.engine() as engine:
        wf = engine.workflow(
            "early", steps={"request": request, "after": lambda c: c.get_output("request")}
        )
        run = await wf.start()
        token = await handed_out.get()
        result = await resume_hook(token, {"early": True}, engine=engine)
        assert result.run_id == run.id
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == {"early": True}


async def test_wait_for_can_return_when_the_run_suspends(env: Env) -> None:
    async def ask(ctx: StepContext) -> None:
        await ctx.wait("?")

    async with env.engine() as engine:
        wf = engine.workflow("susp", steps={"ask": ask})
        run = await wf.start()
        waiting = await wf.wait_for(run.id, timeout=10, suspended=True)
        assert waiting.status == RunStatus.WAITING
        await wf.resume(run.id, 1)
        assert (await wf.wait_for(run.id, timeout=10)).status == RunStatus.DONE
