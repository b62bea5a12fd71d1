"""Cancel, pause, rewind, execute, and waiting for completion."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamline_core import (
    ErrorCode,
    InvalidStateError,
    RunStatus,
    StepContext,
    StepNotFoundError,
    StepStatus,
)
from tests.conftest import Env


async def test_cancel_of_a_step_executing_here_cancels_its_task(env: Env) -> None:
    started = asyncio.Event()
    outcome: list[str] = []
    signals: list[bool] = []

    async def long(ctx: StepContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            signals.append(ctx.signal.is_set())
            outcome.append("cancelled")
            raise

    async with env.engine() as engine:
        wf = engine.workflow(
            "long", steps={"long": long, "never": lambda ctx: outcome.append("next")}
        )
        run = await wf.start()
        await asyncio.wait_for(started.wait(), 5)
        cancelled = await wf.cancel(run.id, reason="user asked")
        await env.settle()
        stored = await wf.get(run.id)
    assert cancelled.status == RunStatus.CANCELLED
    assert outcome == ["cancelled"]
    assert signals == [True]
    assert stored is not None
    assert stored.status == RunStatus.CANCELLED
    assert stored.error is not None
    assert stored.error.code == ErrorCode.WORKFLOW_CANCELLED
    assert stored.error.message == "user asked"
    assert stored.steps[1].status == StepStatus.PENDING  # later steps stay as they were


async def test_cancel_of_a_finished_run_is_invalid(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow("fin", steps={"a": lambda ctx: 1})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
        with pytest.raises(InvalidStateError) as err:
            await wf.cancel(done.id)
    assert err.value.code == ErrorCode.INVALID_STATE


async def test_cancel_of_a_waiting_run(env: Env) -> None:
    async def ask(ctx: StepContext) -> None:
        await ctx.wait("?")

    async with env.engine() as engine:
        wf = engine.workflow("ask", steps={"ask": ask})
        run = await wf.start()
        await env.settle()
        cancelled = await wf.cancel(run.id)
        assert cancelled.status == RunStatus.CANCELLED
        assert (await wf.wait_for(run.id, timeout=5)).status == RunStatus.CANCELLED
        with pytest.raises(InvalidStateError):
            await wf.resume(run.id, "late")


async def test_pausing_stops_timers_from_firing_until_unpaused(env: Env) -> None:
    ran: list[str] = []

    async def nap(ctx: StepContext) -> None:
        await ctx.sleep(60)

    async with env.engine() as engine:
        wf = engine.workflow("nap", steps={"nap": nap, "after": lambda ctx: ran.append("after")})
        run = await wf.start()
        await env.settle()
        paused = await wf.pause(run.id)
        assert paused.paused
        await env.clock.advance(600)
        await env.settle()
        assert ran == []
        still = await wf.get(run.id)
        assert still is not None
        assert still.status == RunStatus.WAITING
        await wf.unpause(run.id)
        await env.clock.advance(1)
        done = await wf.wait_for(run.id, timeout=10)
    assert ran == ["after"]
    assert done.status == RunStatus.DONE


async def test_pausing_during_a_step_lets_it_commit_then_holds_the_run(env: Env) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()
    ran: list[str] = []

    async def first(ctx: StepContext) -> str:
        started.set()
        await gate.wait()
        return "first"

    async with env.engine() as engine:
        wf = engine.workflow("p", steps={"first": first, "second": lambda ctx: ran.append("2")})
        run = await wf.start()
        await asyncio.wait_for(started.wait(), 5)
        await wf.pause(run.id)
        gate.set()
        await env.settle()
        held = await wf.get(run.id)
        assert held is not None
        assert held.steps[0].status == StepStatus.DONE
        assert held.current_step_id == "second"
        assert held.lease is None
        await env.clock.advance(120)
        await env.settle()
        assert ran == []
        await wf.unpause(run.id)
        done = await wf.wait_for(run.id, timeout=10)
    assert ran == ["2"]
    assert done.status == RunStatus.DONE


async def test_resume_of_a_paused_run_records_the_payload_but_runs_nothing(env: Env) -> None:
    ran: list[Any] = []

    async def ask(ctx: StepContext) -> None:
        await ctx.wait("?")

    async with env.engine() as engine:
        wf = engine.workflow(
            "pr", steps={"ask": ask, "use": lambda ctx: ran.append(ctx.get_output("ask"))}
        )
        run = await wf.start()
        await env.settle()
        await wf.pause(run.id)
        resumed = await wf.resume(run.id, "yes")
        assert resumed.steps[0].output == "yes"
        await env.clock.advance(60)
        await env.settle()
        assert ran == []
        await wf.unpause(run.id)
        await wf.wait_for(run.id, timeout=10)
    assert ran == ["yes"]


async def test_pause_of_a_terminal_run_is_invalid(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow("t", steps={"a": lambda ctx: 1})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
        with pytest.raises(InvalidStateError):
            await wf.pause(done.id)
        with pytest.raises(InvalidStateError):
            await wf.unpause(done.id)


async def test_rewind_reruns_from_the_chosen_step(env: Env) -> None:
    counts = {"a": 0, "b": 0, "c": 0}

    def step(name: str) -> Any:
        async def handler(ctx: StepContext) -> str:
            counts[name] += 1
            return f"{name}{counts[name]}"

        return handler

    async with env.engine() as engine:
        wf = engine.workflow("rw", steps={"a": step("a"), "b": step("b"), "c": step("c")})
        run = await wf.start()
        first = await wf.wait_for(run.id, timeout=10)
        assert first.output == "c1"
        rewound = await wf.rewind_to(run.id, "b")
        assert rewound.status == RunStatus.RUNNING
        assert rewound.current_step_id == "b"
        assert rewound.steps[0].output == "a1"
        again = await wf.wait_for(run.id, timeout=10)
        with pytest.raises(StepNotFoundError) as err:
            await wf.rewind_to(run.id, "zzz")
    assert err.value.code == ErrorCode.STEP_NOT_FOUND
    assert counts == {"a": 1, "b": 2, "c": 2}
    assert again.output == "c2"
    assert again.steps[1].output == "b2"


async def test_execute_drives_a_run_in_this_process(env: Env) -> None:
    client = env.engine()

    async def ask(ctx: StepContext) -> None:
        await ctx.wait("?")

    wf = client.workflow("ex", steps={"a": lambda ctx: "A", "ask": ask, "z": lambda ctx: "Z"})
    run = await wf.start()
    suspended = await wf.execute(run.id)
    assert suspended.status == RunStatus.WAITING
    assert suspended.steps[0].output == "A"
    await wf.resume(run.id, "ok")
    finished = await wf.execute(run.id)
    assert finished.status == RunStatus.DONE
    assert finished.output == "Z"
    assert (await wf.execute(run.id)).status == RunStatus.DONE


async def test_concurrent_execute_never_runs_a_step_twice(env: Env) -> None:
    calls = 0
    gate = asyncio.Event()

    async def once(ctx: StepContext) -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return calls

    client = env.engine()
    wf = client.workflow("once", steps={"once": once})
    run = await wf.start()
    first = asyncio.ensure_future(wf.execute(run.id))
    await env.settle()
    second = await wf.execute(run.id)
    assert second.status == RunStatus.RUNNING
    gate.set()
    assert (await first).status == RunStatus.DONE
    assert calls == 1


async def test_wait_for_times_out_in_real_seconds(env: Env) -> None:
    async def ask(ctx: StepContext) -> None:
        await ctx.wait("?")

    async with env.engine() as engine:
        wf = engine.workflow("w", steps={"ask": ask})
        run = await wf.start()
        with pytest.raises(TimeoutError):
            await wf.wait_for(run.id, timeout=0.05, poll_interval=0.01)


async def test_rewind_refuses_to_revive_a_run_whose_key_is_taken(env: Env) -> None:
    async def ask(ctx: StepContext) -> None:
        await ctx.wait("?")

    async with env.engine() as engine:
        wf = engine.workflow("keyed", steps={"a": lambda ctx: 1, "ask": ask})
        old = await wf.wait_for(
            (await wf.start(idempotency_key="k")).id, suspended=True, timeout=10
        )
        await wf.cancel(old.id)
        newer = await wf.start(idempotency_key="k")
        assert newer.id != old.id
        with pytest.raises(InvalidStateError, match="idempotency key"):
            await wf.rewind_to(old.id, "a")
        await wf.cancel(newer.id)
        revived = await wf.rewind_to(old.id, "a")
        assert revived.status == RunStatus.RUNNING


async def test_execute_on_a_client_engine_heartbeats_a_long_step(env: Env) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def long(ctx: StepContext) -> str:
        started.set()
        await gate.wait()
        return "done"

    client = env.engine(worker_id="client", lease=30)
    wf = client.workflow("long-exec", steps={"long": long})
    run = await wf.start()
    executing = asyncio.ensure_future(wf.execute(run.id))
    await asyncio.wait_for(started.wait(), 5)
    for _ in range(12):  # two minutes, four leases long
        await env.clock.advance(10)
        await env.settle()
    stored = await wf.get(run.id)
    assert stored is not None
    assert stored.lease is not None
    assert stored.lease.owner == "client"
    assert stored.lease.expires_at > env.clock.now()
    gate.set()
    assert (await executing).output == "done"


class HoldStaleCommit:
    """Holds the commit of the output "stale" until the test lets it through."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.holding = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def transition(
        self, run_id: str, revision: int, patch: Any, owner: Any = None, **kw: Any
    ) -> Any:
        if any(isinstance(v, dict) and v.get("output") == "stale" for v in patch.values()):
            self.holding.set()
            await self.go.wait()
        return await self.inner.transition(run_id, revision, patch, owner, **kw)


@pytest.mark.parametrize("target", ["a", "b"])
async def test_a_rewind_during_a_commit_never_lands_the_old_result(env: Env, target: str) -> None:
    calls: list[str] = []

    async def a(ctx: StepContext) -> str:
        calls.append("a")
        return "a"

    async def b(ctx: StepContext) -> str:
        calls.append("b")
        return "stale" if calls.count("b") == 1 else "fresh"

    store = HoldStaleCommit(env.store)
    async with env.engine(store=store) as engine:
        wf = engine.workflow("rewind-race", steps={"a": a, "b": b})
        run = await wf.start()
        await asyncio.wait_for(store.holding.wait(), 5)  # b's "stale" commit is in flight
        held = await env.store.get(run.id)
        assert held is not None
        rewinding = asyncio.ensure_future(wf.rewind_to(run.id, target))
        for _ in range(5000):  # until the rewind has landed in the store
            stored = await env.store.get(run.id)
            if stored is not None and stored.revision > held.revision:
                break
            await asyncio.sleep(0.001)
        else:
            raise AssertionError("the rewind never landed")
        store.go.set()  # now the stale commit meets the rewound run
        await rewinding
        done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.DONE
    assert done.steps[1].output == "fresh"
    assert calls == (["a", "b", "a", "b"] if target == "a" else ["a", "b", "b"])


async def test_cancel_of_a_waiting_run_clears_its_wait_and_the_step_keeps_what_it_waited_for(
    env: Env,
) -> None:
    async def ask(ctx: StepContext) -> None:
        await ctx.wait("approve the order", {"order": 7})

    async with env.engine() as engine:
        wf = engine.workflow("approval", steps={"ask": ask, "ship": lambda ctx: "shipped"})
        run = await wf.start()
        waiting = await wf.wait_for(run.id, timeout=10, suspended=True)
        assert waiting.wait is not None
        cancelled = await wf.cancel(run.id, "customer changed their mind")
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.wait is None
    assert cancelled.steps[0].wait is not None
    assert cancelled.steps[0].wait.reason == "approve the order"
    assert cancelled.steps[1].status == StepStatus.PENDING


@pytest.mark.parametrize("target", ["a", "b"])
async def test_a_rewind_from_another_engine_while_the_step_executes(env: Env, target: str) -> None:
    """The worker claims the rewound run again under its own id: the old execution's result
    must not land (it belongs to the epoch before the rewind), and the run is driven again at
    once, not left leased and idle until its lease runs out (a spurious recovery)."""
    calls: list[str] = []
    first_b = asyncio.Event()
    release = asyncio.Event()

    async def a(ctx: StepContext) -> str:
        calls.append("a")
        return "a"

    async def b(ctx: StepContext) -> str:
        calls.append("b")
        if calls.count("b") == 1:
            first_b.set()
            await release.wait()
            return "stale"
        return "fresh"

    steps = {"a": a, "b": b, "c": lambda ctx: "c"}
    worker = env.engine(worker_id="W", lease=30)
    wf = worker.workflow("rewound-elsewhere", steps=steps)
    admin = env.engine(worker_id="admin")
    admin_wf = admin.workflow("rewound-elsewhere", steps=steps)
    await worker.start()
    run = await wf.start()
    await asyncio.wait_for(first_b.wait(), 5)
    rewound = await admin_wf.rewind_to(run.id, target)
    assert rewound.epoch == 1
    await env.clock.advance(0.1)  # the worker polls and claims the rewound run again
    await env.settle()
    release.set()
    done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.DONE
    assert done.steps[1].output == "fresh"
    assert done.recoveries == 0
    assert calls == (["a", "b", "a", "b"] if target == "a" else ["a", "b", "b"])
