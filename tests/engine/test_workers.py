"""Many workers on one store: exactly-once commits, crash recovery, fencing, dead letters."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from streamline_core import Engine, ErrorCode, RunStatus, StepContext
from streamline_core.errors import StoreUnavailableError
from tests.conftest import Env


async def crash(engine: Engine) -> None:
    """Simulate a dead process: stop claiming and heartbeating, release nothing."""
    assert engine._worker is not None
    await engine._worker.stop()
    await engine._heartbeats.stop()


class StuckStep:
    """A step that runs until cancelled; records when (fake time) and if ctx.signal was set."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.t0 = env.clock.now()
        self.started = asyncio.Event()
        self.stopped: list[tuple[float, bool]] = []

    async def __call__(self, ctx: StepContext) -> None:
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            elapsed = (self.env.clock.now() - self.t0).total_seconds()
            self.stopped.append((elapsed, ctx.signal.is_set()))
            raise

    async def start(self, engine: Engine, name: str) -> None:
        await engine.start()
        await engine.workflow(name, steps={"long": self}).start()
        await asyncio.wait_for(self.started.wait(), 5)


async def test_two_engines_share_40_runs_and_every_step_runs_exactly_once(env: Env) -> None:
    executions: Counter[tuple[str, str]] = Counter()
    workers: Counter[str] = Counter()

    def make(step: str, worker: str) -> Any:
        async def handler(ctx: StepContext) -> str:
            executions[(ctx.run_id, step)] += 1
            workers[worker] += 1
            await asyncio.sleep(0)
            return step

        return handler

    def steps_of(worker: str) -> dict[str, Any]:
        # Each engine registers its own handlers, so a handler knows which worker runs it.
        return {s: make(s, worker) for s in ("one", "two", "three")}

    steps = steps_of("client")
    client = env.engine()
    wf = client.workflow("shared", steps=steps)
    runs = [await wf.start({"i": i}) for i in range(40)]
    a = env.engine(worker_id="A", max_concurrent_runs=4)
    b = env.engine(worker_id="B", max_concurrent_runs=4)
    a.workflow("shared", steps=steps_of("A"))
    b.workflow("shared", steps=steps_of("B"))
    await asyncio.gather(a.start(), b.start())
    for _ in range(200):
        if await client.runs.count(status="done") == 40:
            break
        await env.clock.advance(0.5)
        await env.settle()
    assert await client.runs.count(status="done") == 40
    assert all(executions[(r.id, s)] == 1 for r in runs for s in steps)
    assert sum(executions.values()) == 120
    assert set(workers) == {"A", "B"}


async def test_a_dead_workers_run_is_recovered_and_its_late_commit_is_fenced(env: Env) -> None:
    gate = asyncio.Event()
    calls: Counter[str] = Counter()
    recovered: list[Any] = []

    async def one(ctx: StepContext) -> str:
        calls["one"] += 1
        return "1"

    async def doomed_two(ctx: StepContext) -> str:
        calls["two"] += 1
        await gate.wait()
        return "late"

    async def two(ctx: StepContext) -> str:
        calls["two"] += 1
        return "2"

    async def three(ctx: StepContext) -> str:
        calls["three"] += 1
        return "3"

    steps = {"one": one, "two": two, "three": three}
    doomed = env.engine(worker_id="doomed", lease=30)
    await doomed.start()
    wf = doomed.workflow("crashy", steps={**steps, "two": doomed_two})
    run = await wf.start()
    await env.settle()
    assert calls == {"one": 1, "two": 1}
    await crash(doomed)

    rescuer = env.engine(worker_id="rescuer", lease=30)
    rescuer.on("workflow:recovered")(recovered.append)
    rwf = rescuer.workflow("crashy", steps=steps)
    await rescuer.start()
    await env.clock.advance(29)
    await env.settle()
    assert calls["two"] == 1  # lease still live: nobody else may run it
    await env.clock.advance(2)
    done = await rwf.wait_for(run.id, timeout=10)
    gate.set()  # the zombie finishes and tries to commit
    await env.settle()
    final = await rwf.get(run.id)
    assert final is not None
    assert done.status == RunStatus.DONE
    assert calls == {"one": 1, "two": 2, "three": 1}
    assert final.recoveries == 1
    assert final.steps[1].output == "2"  # the zombie's "late" never landed
    assert final.revision == done.revision
    assert [e.run_id for e in recovered] == [run.id]


async def test_a_run_that_keeps_killing_workers_is_dead_lettered(env: Env) -> None:
    async def hang(ctx: StepContext) -> None:
        await asyncio.Event().wait()

    steps = {"hang": hang}
    first = env.engine(worker_id="w0", lease=10)
    await first.start()
    run = await first.workflow("poison", steps=steps).start()
    await env.settle()
    await crash(first)
    for i in (1, 2):
        w = env.engine(worker_id=f"w{i}", lease=10, max_recoveries=1)
        w.workflow("poison", steps=steps)
        await w.start()
        await env.clock.advance(11)
        await env.settle()
        await crash(w)
    final = await env.engine().workflow("poison", steps=steps).get(run.id)
    assert final is not None
    assert final.status == RunStatus.FAILED
    assert final.error is not None
    assert final.error.code == ErrorCode.DEAD_LETTERED
    assert final.recoveries == 2


class HeartbeatOutage:
    """A store whose heartbeats fail (the rest works)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailableError("heartbeats are down")


async def test_losing_the_lease_cancels_the_step_and_sets_the_signal(env: Env) -> None:
    step = StuckStep(env)
    await step.start(env.engine(store=HeartbeatOutage(env.store), lease=30), "long")
    await env.clock.advance(20)
    await env.settle()
    assert step.stopped == []
    await env.clock.advance(10)
    await env.settle()
    assert step.stopped == [(30.0, True)]  # by the lease's expiry on its own clock


async def test_heartbeats_keep_a_long_step_owned(env: Env) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def long(ctx: StepContext) -> str:
        started.set()
        await gate.wait()
        return "finished"

    async with env.engine(worker_id="holder", lease=30) as engine:
        wf = engine.workflow("hb", steps={"long": long})
        run = await wf.start()
        await asyncio.wait_for(started.wait(), 5)
        other = env.engine(worker_id="thief", lease=30)
        other.workflow("hb", steps={"long": long})
        await other.start()
        for _ in range(12):  # two minutes: four leases long
            await env.clock.advance(10)
            await env.settle()
        stored = await wf.get(run.id)
        assert stored is not None
        assert stored.lease is not None
        assert stored.lease.owner == "holder"
        gate.set()
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == "finished"
    assert done.recoveries == 0


async def test_shutdown_releases_leases_of_runs_it_did_not_finish(env: Env) -> None:
    started = asyncio.Event()

    async def hang(ctx: StepContext) -> None:
        started.set()
        await asyncio.Event().wait()

    engine = env.engine(worker_id="leaving")
    await engine.start()
    wf = engine.workflow("bye", steps={"hang": hang})
    run = await wf.start()
    await asyncio.wait_for(started.wait(), 5)
    await engine.shutdown(timeout=0.01)
    stored = await env.store.get(run.id)
    assert stored is not None
    assert stored.lease is None
    assert stored.status == RunStatus.RUNNING


async def test_stats_count_claims_commits_retries_and_outcomes(env: Env) -> None:
    async def flaky(ctx: StepContext) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("once")
        return "ok"

    client = env.engine()
    cwf = client.workflow("stats", steps={"a": lambda ctx: 1, "flaky": flaky})
    run = await cwf.start()
    async with env.engine() as engine:
        wf = engine.workflow("stats", steps={"a": lambda ctx: 1, "flaky": flaky})
        await env.clock.advance(0)
        for _ in range(5):
            await env.clock.advance(2)
        await wf.wait_for(run.id, timeout=10)
        stats = engine.stats()
    assert stats["claims"] == 2  # the first claim and the retry
    assert stats["commits"] == 3  # a, flaky's failure, flaky
    assert stats["retries"] == 1
    assert stats["completed"] == 1
    assert stats["failed"] == 0
    assert stats["in_flight"] == 0


async def test_workers_claim_only_the_versions_they_registered(env: Env) -> None:
    errors: list[Any] = []
    ran: list[str] = []
    client = env.engine()
    v2 = client.workflow("mixed", steps={"a": lambda ctx: ran.append("v2")}, version="2")
    v2_runs = [await v2.start() for _ in range(3)]
    async with env.engine(worker_id="old") as old_worker:
        old_worker.on("engine:error")(errors.append)
        old_worker.workflow("mixed", steps={"a": lambda ctx: ran.append("v1")}, version="1")
        await env.clock.advance(0)
        await env.settle()
        await env.clock.advance(60)
        await env.settle()
        for run in v2_runs:
            stored = await env.store.get(run.id)
            assert stored is not None
            assert stored.lease is None  # never claimed by a worker without version 2
        assert errors == []
        async with env.engine(worker_id="new") as new_worker:
            wf = new_worker.workflow(
                "mixed", steps={"a": lambda ctx: ran.append("v2")}, version="2"
            )
            for run in v2_runs:
                assert (await wf.wait_for(run.id, timeout=10)).status == RunStatus.DONE
    assert ran == ["v2", "v2", "v2"]


async def test_consecutive_heartbeat_failures_stop_the_step_before_expiry(env: Env) -> None:
    step = StuckStep(env)
    engine = env.engine(store=HeartbeatOutage(env.store), lease=30, max_heartbeat_failures=1)
    await step.start(engine, "hb1")
    await env.clock.advance(10)
    await env.settle()
    # the first failed heartbeat (lease/3), well before the 30 s expiry
    assert step.stopped == [(10.0, True)]


class HeartbeatHangs:
    """A store whose heartbeats never answer (a hung connection)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.Event().wait()


async def test_a_heartbeat_that_never_answers_stops_the_step_at_lease_expiry(env: Env) -> None:
    step = StuckStep(env)
    await step.start(env.engine(store=HeartbeatHangs(env.store), lease=30), "hang")
    await env.clock.advance(29)
    await env.settle()
    assert step.stopped == []
    await env.clock.advance(1)
    await env.settle()
    assert step.stopped == [(30.0, True)]
