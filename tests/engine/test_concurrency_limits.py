"""Concurrency(limit, key): strict per-key slots, held only while a run holds a lease."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from streamline_core import Concurrency, Engine, ErrorCode, RunStatus, StepContext, ValidationError
from streamline_testing import InMemoryStore
from tests.conftest import Env


class Gate:
    """A step that counts how many runs of each key execute at once, until released."""

    def __init__(self) -> None:
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.release = asyncio.Event()
        self.ran: list[str] = []

    async def __call__(self, ctx: StepContext) -> str:
        key = ctx.input["k"]
        self.running[key] += 1
        self.peak[key] = max(self.peak[key], self.running[key])
        self.ran.append(ctx.run_id)
        try:
            await self.release.wait()
        finally:
            self.running[key] -= 1
        return key


def by_k(value: Any) -> str:
    return str(value["k"])


async def until_done(env: Env, engine: Engine, n: int, rounds: int = 200) -> None:
    for _ in range(rounds):
        if await engine.runs.count(status="done") == n:
            return
        await env.clock.advance(0.1)
        await env.settle()
    raise AssertionError(f"only {await engine.runs.count(status='done')} of {n} runs finished")


async def test_at_most_limit_runs_of_a_key_execute_and_the_rest_start_as_slots_free(
    env: Env,
) -> None:
    gate = Gate()
    engine = env.engine(max_concurrent_runs=20)
    wf = engine.workflow("sync", steps={"a": gate, "b": gate}, concurrency=Concurrency(2, by_k))
    await engine.start()
    runs = [await wf.start({"k": k}) for k in ("x",) * 5 + ("y",) * 3]
    for _ in range(5):
        await env.clock.advance(0.1)
        await env.settle()
    assert gate.running == {"x": 2, "y": 2}
    gate.release.set()
    await until_done(env, engine, len(runs))
    assert gate.peak == {"x": 2, "y": 2}
    assert all(r.concurrency_key == r.input["k"] for r in runs)
    assert all(r.concurrency_limit == 2 for r in runs)


async def test_excess_runs_start_in_claim_order(env: Env) -> None:
    gate = Gate()
    gate.release.set()
    engine = env.engine()
    wf = engine.workflow("ordered", steps={"a": gate}, concurrency=Concurrency(1))
    runs = []
    for _ in range(4):
        runs.append(await wf.start({"k": "one"}))
        await env.clock.advance(0.01)  # claim order: due time, then id
    await engine.start()
    await until_done(env, engine, 4)
    assert gate.ran == [r.id for r in runs]
    assert gate.peak == {"one": 1}
    assert {r.concurrency_key for r in runs} == {""}  # key=None: one bucket per workflow


async def test_a_waiting_run_holds_no_slot(env: Env) -> None:
    order: list[str] = []

    async def ask(ctx: StepContext) -> None:
        if ctx.input["who"] == "parent":
            await ctx.wait("approve")
        order.append(ctx.input["who"])

    async def finish(ctx: StepContext) -> None:
        order.append(f"{ctx.input['who']} done")

    engine = env.engine()
    wf = engine.workflow("held", steps={"ask": ask, "finish": finish}, concurrency=Concurrency(1))
    await engine.start()
    parent = await wf.start({"who": "parent"})
    await env.clock.advance(0.1)
    await env.settle()
    assert (await wf.get(parent.id)).status == RunStatus.WAITING  # type: ignore[union-attr]
    other = await wf.start({"who": "other"})
    await until_done(env, engine, 1)
    assert (await wf.get(other.id)).status == RunStatus.DONE  # type: ignore[union-attr]
    await wf.resume(parent.id, "ok")
    await until_done(env, engine, 2)
    assert order == ["other", "other done", "parent done"]


async def test_a_dead_workers_slot_frees_when_its_lease_expires(env: Env) -> None:
    started = asyncio.Event()

    async def hang(ctx: StepContext) -> str:
        if ctx.input["n"] == 0 and ctx.attempt == 1 and not started.is_set():
            started.set()
            await asyncio.Event().wait()
        return "ok"

    steps = {"hang": hang}
    a = env.engine(worker_id="A", lease=10)
    wf_a = a.workflow("crashy", steps=steps, concurrency=Concurrency(1))
    await a.start()
    first = await wf_a.start({"n": 0})
    await asyncio.wait_for(started.wait(), 5)
    second = await wf_a.start({"n": 1})
    await env.settle()
    # A dies: no more claims, heartbeats or commits.
    assert a._worker is not None
    await a._worker.stop()
    await a._heartbeats.stop()
    b = env.engine(worker_id="B", lease=10)
    wf_b = b.workflow("crashy", steps=steps, concurrency=Concurrency(1))
    await b.start()
    await env.clock.advance(5)
    await env.settle()
    assert (await wf_b.get(second.id)).status == RunStatus.RUNNING  # type: ignore[union-attr]
    assert (await b.runs.count(status="done")) == 0  # the slot is still A's
    await until_done(env, b, 2)
    recovered = await wf_b.get(first.id)
    assert recovered is not None and recovered.recoveries == 1


async def test_client_execute_of_a_run_whose_slot_is_taken_returns_it_unchanged(
    env: Env,
) -> None:
    gate = Gate()
    worker = env.engine(worker_id="W")
    wf = worker.workflow("exec", steps={"a": gate}, concurrency=Concurrency(1, by_k))
    await worker.start()
    await wf.start({"k": "k"})
    for _ in range(3):
        await env.clock.advance(0.1)
        await env.settle()
    assert gate.running["k"] == 1
    client = env.engine(worker_id="C")
    cwf = client.workflow("exec", steps={"a": gate}, concurrency=Concurrency(1, by_k))
    queued = await cwf.start({"k": "k"})
    got = await cwf.execute(queued.id)
    assert got.lease is None and got.status == RunStatus.RUNNING
    assert gate.running["k"] == 1
    gate.release.set()
    await until_done(env, worker, 2)
    assert gate.peak["k"] == 1


async def test_client_execute_drives_a_run_whose_slot_is_free(env: Env) -> None:
    gate = Gate()
    gate.release.set()
    client = env.engine(worker_id="C")
    wf = client.workflow("exec2", steps={"a": gate}, concurrency=Concurrency(1, by_k))
    run = await wf.start({"k": "k"})
    done = await wf.execute(run.id)
    assert done.status == RunStatus.DONE and done.began_at is not None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Concurrency(0), "limit"),
        (lambda: Concurrency(True), "limit"),  # type: ignore[arg-type]
        (lambda: Concurrency(2, key="account_id"), "callable"),  # type: ignore[arg-type]
    ],
)
def test_bad_concurrency_options_are_validation_errors(build: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        build()
    assert info.value.code == ErrorCode.VALIDATION_ERROR


async def test_a_key_that_returns_a_non_string_fails_start_and_stores_nothing(env: Env) -> None:
    engine = env.engine()
    wf = engine.workflow("badkey", steps={"a": lambda ctx: None}, concurrency=Concurrency(1, len))
    with pytest.raises(ValidationError, match="must return a str"):
        await wf.start([1, 2])
    assert await engine.runs.count() == 0


async def test_a_store_without_the_flow_control_claim_is_refused_at_registration() -> None:
    class Plain:
        def __init__(self) -> None:
            self._inner = InMemoryStore()

        def __getattr__(self, name: str) -> Any:
            if name == "claim_limited":
                raise AttributeError(name)
            return getattr(self._inner, name)

    engine = Engine(Plain(), load_entry_point_plugins=False)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="claim_limited") as info:
        engine.workflow("limited", steps={"a": lambda ctx: None}, concurrency=Concurrency(1))
    assert info.value.code == ErrorCode.VALIDATION_ERROR
    engine.workflow("plain", steps={"a": lambda ctx: None})  # unlimited workflows still register
    await engine.shutdown()
