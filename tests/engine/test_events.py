"""Lifecycle events reach engine.on handlers and plugins; observers never break execution."""

from __future__ import annotations

from typing import Any

from streamline_core import Event, StepConfig, StepContext, hookimpl
from tests.conftest import Env


async def test_lifecycle_events_in_order(env: Env) -> None:
    names: list[str] = []

    async def ask(ctx: StepContext) -> None:
        await ctx.emit("custom:thing", {"n": 1})
        await ctx.wait("?")

    async with env.engine() as engine:
        engine.on("*")(lambda e: names.append(e.name))
        wf = engine.workflow("ev", steps={"a": lambda ctx: 1, "ask": ask})
        run = await wf.start()
        await env.settle()
        await wf.resume(run.id, "ok")
        await wf.wait_for(run.id, timeout=10)
    assert names == [
        "workflow:started",
        "step:started",
        "step:completed",
        "step:started",
        "custom:thing",
        "step:waiting",
        "workflow:waiting",
        "workflow:resumed",
        "workflow:completed",
    ]


async def test_failure_and_retry_events(env: Env) -> None:
    names: list[str] = []

    async def boom(ctx: StepContext) -> None:
        raise RuntimeError("boom")

    async with env.engine() as engine:
        engine.on("*")(lambda e: names.append(e.name))
        wf = engine.workflow("f", steps={"boom": StepConfig(boom, retries=2, retry_delay=1)})
        run = await wf.start()
        await env.clock.advance(5)
        await wf.wait_for(run.id, timeout=10)
    assert names == [
        "workflow:started",
        "step:started",
        "step:failed",
        "step:retry-scheduled",
        "workflow:retry",
        "step:started",
        "step:failed",
        "workflow:failed",
    ]


async def test_event_fields(env: Env) -> None:
    events: list[Event] = []

    async def a(ctx: StepContext) -> dict[str, int]:
        return {"x": 1}

    async with env.engine() as engine:
        engine.on("step:completed")(events.append)
        wf = engine.workflow("fields", steps={"a": a})
        run = await wf.start()
        await wf.wait_for(run.id, timeout=10)
    (event,) = events
    assert event.run_id == run.id
    assert event.step_id == "a"
    assert event.data == {"x": 1}
    assert event.workflow_id == "fields"
    assert event.at == env.clock.now()


async def test_async_handlers_and_plugins_receive_events(env: Env) -> None:
    seen: list[str] = []

    class Observer:
        @hookimpl
        async def streamline_event(self, event: Event) -> None:
            seen.append(f"plugin:{event.name}")

    async def handler(event: Event) -> None:
        seen.append(f"on:{event.name}")

    async with env.engine(plugins=[Observer()]) as engine:
        engine.on("workflow:completed", handler)
        wf = engine.workflow("p", steps={"a": lambda ctx: 1})
        await wf.wait_for((await wf.start()).id, timeout=10)
    assert "plugin:workflow:started" in seen
    assert "plugin:workflow:completed" in seen
    assert "on:workflow:completed" in seen


async def test_a_failing_observer_is_reported_and_never_breaks_execution(env: Env) -> None:
    errors: list[Any] = []

    class Broken:
        @hookimpl
        def streamline_event(self, event: Event) -> None:
            if event.name == "step:completed":
                raise RuntimeError("observer bug")

    def bad_handler(event: Event) -> None:
        raise ValueError("handler bug")

    async with env.engine(plugins=[Broken()]) as engine:
        engine.on("engine:error")(errors.append)
        engine.on("workflow:started")(bad_handler)
        wf = engine.workflow("obs", steps={"a": lambda ctx: 1, "b": lambda ctx: 2})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert done.output == 2
    assert [str(e.error) for e in errors] == ["observer bug", "observer bug"]


async def test_step_middleware_hooks(env: Env) -> None:
    calls: list[tuple[str, str]] = []

    class Middleware:
        @hookimpl
        def streamline_before_step(self, run: Any, step: Any, attempt: int) -> None:
            calls.append(("before", step.step_id))

        @hookimpl
        async def streamline_after_step(self, run: Any, step: Any, output: Any) -> None:
            calls.append(("after", step.step_id))

        @hookimpl
        def streamline_step_error(self, run: Any, step: Any, error: BaseException) -> None:
            calls.append(("error", step.step_id))

    async def fails(ctx: StepContext) -> None:
        raise RuntimeError("x")

    async with env.engine(plugins=[Middleware()]) as engine:
        wf = engine.workflow("mw", steps={"ok": lambda c: 1, "fails": StepConfig(fails, retries=1)})
        await wf.wait_for((await wf.start()).id, timeout=10)
    assert calls == [("before", "ok"), ("after", "ok"), ("before", "fails"), ("error", "fails")]
