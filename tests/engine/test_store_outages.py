"""Store outages: the worker backs off, reports scheduler:error, keeps results, recovers."""

from __future__ import annotations

from typing import Any

import pytest

from streamline_core import DataCorruptionError, ErrorCode, RunStatus, StepContext, ValidationError
from streamline_core.errors import StoreUnavailableError
from tests.conftest import Env


class Flaky:
    """Fails the named operations while ``down`` is set (a store outage)."""

    def __init__(self, inner: Any, *ops: str) -> None:
        self.inner = inner
        self.ops = set(ops)
        self.down = 0
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.ops:
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down > 0:
                self.down -= 1
                self.failures += 1
                raise StoreUnavailableError(f"{name}: store is down")
            return await attr(*args, **kwargs)

        return call


async def test_claims_back_off_during_an_outage_and_resume_after(env: Env) -> None:
    errors: list[Any] = []
    flaky = Flaky(env.store, "claim")
    client = env.engine()
    wf = client.workflow("outage", steps={"a": lambda ctx: "ok"})
    run = await wf.start()
    flaky.down = 5
    async with env.engine(store=flaky) as worker:
        worker.on("scheduler:error")(errors.append)
        worker.workflow("outage", steps={"a": lambda ctx: "ok"})
        for _ in range(40):
            await env.clock.advance(1)
        done = await wf.wait_for(run.id, timeout=10)
        assert worker.stats()["store_errors"] == 5
    assert done.status == RunStatus.DONE
    assert flaky.failures == 5
    assert len(errors) == 5


async def test_a_step_result_waits_for_the_store_instead_of_running_again(env: Env) -> None:
    calls = 0

    async def once(ctx: StepContext) -> str:
        nonlocal calls
        calls += 1
        return "result"

    flaky = Flaky(env.store, "transition")
    async with env.engine(store=flaky, lease=30) as worker:
        wf = worker.workflow("keep", steps={"once": once})
        flaky.down = 3
        run = await wf.start()
        for _ in range(10):
            await env.clock.advance(1)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.DONE
    assert done.output == "result"
    assert calls == 1
    assert flaky.failures == 3


class RefusesBigWrites:
    """Refuses (as a real server does past its document limit) any write holding ``"huge"``."""

    def __init__(self, inner: Any, error: type[Exception]) -> None:
        self.inner = inner
        self.error = error
        self.refusals = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def transition(
        self, run_id: str, revision: int, patch: Any, owner: Any = None, **kw: Any
    ) -> Any:
        if "huge" in repr(patch):
            self.refusals += 1
            raise self.error("the document would be over the store's 16 MB limit")
        return await self.inner.transition(run_id, revision, patch, owner, **kw)


@pytest.mark.parametrize("error", [ValidationError, DataCorruptionError])
@pytest.mark.parametrize("where", ["output", "context", "wait"])
async def test_a_result_the_store_refuses_fails_the_step_once(
    env: Env, error: type[Exception], where: str
) -> None:
    calls: list[int] = []

    async def produce(ctx: StepContext) -> Any:
        calls.append(ctx.attempt)
        if where == "context":
            ctx.set("blob", "huge")
        if where == "wait":
            await ctx.wait("approve", {"blob": "huge"})
        return "huge" if where == "output" else "small"

    store = RefusesBigWrites(env.store, error)
    async with env.engine(store=store) as engine:
        wf = engine.workflow("big", steps={"produce": produce, "next": lambda ctx: 1})
        run = await wf.start()
        done = await wf.wait_for(run.id, timeout=10)
    assert calls == [1]  # never re-run until dead-lettered
    assert done.status == RunStatus.FAILED
    assert done.error is not None and done.error.code == ErrorCode.STEP_FAILED.value
    assert "the store refused its result" in done.error.message
    assert "16 MB" in done.error.message
    assert done.recoveries == 0


class LosesAnswers:
    """Applies the next ``lose`` transitions that carry a step's record, then answers
    ``StoreUnavailableError`` (the answer was lost on the way back)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lose = 0
        self.write_ids: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def transition(self, *args: Any, **kwargs: Any) -> Any:
        result = await self.inner.transition(*args, **kwargs)
        if self.lose > 0 and any(k.startswith("steps.") for k in args[2]):
            self.lose -= 1
            self.write_ids.append(kwargs.get("write_id"))
            raise StoreUnavailableError("connection reset after the update was sent")
        return result


async def test_a_commit_whose_answer_was_lost_is_recognised_on_retry(env: Env) -> None:
    calls: list[str] = []
    completed: list[Any] = []

    async def step(ctx: StepContext) -> str:
        calls.append(ctx.step_id)
        return ctx.step_id

    store = LosesAnswers(env.store)
    async with env.engine(store=store, lease=30) as worker:
        worker.on("workflow:completed")(completed.append)
        wf = worker.workflow("lost", steps={"a": step, "b": step})
        store.lose = 2  # the commits of "a" and of "b" (the last one) both lose their answer
        run = await wf.start()
        for _ in range(5):
            await env.clock.advance(1)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.DONE
    assert done.output == "b"
    assert calls == ["a", "b"]  # each step ran once, and no lease had to expire
    assert done.recoveries == 0
    assert len(completed) == 1
    assert len(store.write_ids) == 2 and all(store.write_ids)
