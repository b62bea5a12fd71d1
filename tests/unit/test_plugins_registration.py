"""Plugin registration rules."""

from __future__ import annotations

from typing import Any

import pytest

from streamline_core import Engine, ValidationError, hookimpl
from streamline_testing import InMemoryStore


def test_an_async_firstresult_policy_is_refused_naming_the_hook() -> None:
    class AsyncPolicy:
        @hookimpl
        async def streamline_retry_delay(
            self, run: Any, step: Any, config: Any, attempt: int, error: BaseException
        ) -> float:
            return 1.0

    with pytest.raises(ValidationError, match="streamline_retry_delay") as err:
        Engine(InMemoryStore(), plugins=[AsyncPolicy()])
    # Named by its class, never by pluggy's id() name for unnamed plugins.
    assert "AsyncPolicy" in str(err.value)
    assert str(id(AsyncPolicy)) not in str(err.value)


def test_an_unknown_hook_is_refused() -> None:
    class Typo:
        @hookimpl
        def streamline_evnt(self, event: Any) -> None: ...

    with pytest.raises(ValidationError, match="streamline_evnt"):
        Engine(InMemoryStore(), plugins=[Typo()])


def test_each_engine_has_its_own_plugin_manager() -> None:
    a = Engine(InMemoryStore())
    b = Engine(InMemoryStore())
    assert a.plugins.pm is not b.plugins.pm


async def test_a_plugin_registered_after_construction_gets_events() -> None:
    from streamline_core import Event
    from streamline_testing import FakeClock

    seen: list[str] = []

    class Late:
        @hookimpl
        def streamline_event(self, event: Event) -> None:
            seen.append(event.name)

        @hookimpl
        def streamline_before_step(self, run: Any, step: Any, attempt: int) -> None:
            seen.append("before")

    engine = Engine(InMemoryStore(), clock=FakeClock(), load_entry_point_plugins=False)
    engine.plugins.register(Late())
    wf = engine.workflow("late", steps={"a": lambda ctx: 1})
    async with engine:
        await wf.wait_for((await wf.start()).id, timeout=5)
    assert seen[:3] == ["workflow:started", "step:started", "before"]
    assert "workflow:completed" in seen


async def test_a_broken_retry_policy_falls_back_to_the_builtin_backoff() -> None:
    from streamline_core import RunStatus, StepConfig
    from streamline_testing import FakeClock

    class Broken:
        @hookimpl
        def streamline_retry_delay(
            self, run: Any, step: Any, config: Any, attempt: int, error: BaseException
        ) -> float:
            raise RuntimeError("policy bug")

    async def once(ctx: Any) -> str:
        if ctx.attempt == 1:
            raise ValueError("first")
        return "second"

    clock = FakeClock()
    engine = Engine(
        InMemoryStore(), clock=clock, plugins=[Broken()], load_entry_point_plugins=False
    )
    wf = engine.workflow("b", steps={"once": StepConfig(once, retry_delay=1)})
    async with engine:
        run = await wf.start()
        for _ in range(5):
            await clock.advance(1)
        done = await wf.wait_for(run.id, timeout=5)
    assert done.status == RunStatus.DONE


async def test_a_broken_poll_policy_does_not_stop_the_worker() -> None:
    import asyncio

    class Broken:
        @hookimpl
        def streamline_poll_delay(self, stats: Any) -> float:
            raise RuntimeError("policy bug")

    store = InMemoryStore()
    client = Engine(store, load_entry_point_plugins=False)
    wf = client.workflow("p", steps={"a": lambda ctx: 1})
    engine = Engine(
        store,
        plugins=[Broken()],
        load_entry_point_plugins=False,
        max_poll_interval=0.01,
        min_poll_interval=0.01,
    )
    engine.workflow("p", steps={"a": lambda ctx: 1})
    async with engine:
        await asyncio.sleep(0.05)  # the worker has polled (and the policy failed) already
        run = await wf.start()
        done = await wf.wait_for(run.id, timeout=5, poll_interval=0.01)
    assert done.status == "done"
