"""Every hookspec, proven through an engine: one ``test_hook_<name>`` each, plus the rules.

The rules: observers never affect execution, policies are sync, entry-point
plugins load by name and ``STREAMLINE_DISABLE_PLUGINS`` blocks them.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
import types
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamline_core import (
    GIVE_UP,
    Engine,
    ErrorCode,
    Event,
    NonRetriableError,
    RunStatus,
    StepConfig,
    StepContext,
    StepStatus,
    StepTimeoutError,
    ValidationError,
    hookimpl,
)
from streamline_core.clock import SystemClock
from streamline_core.hooks import FIRSTRESULT_HOOKS
from streamline_core.run import StepState, WorkflowRun
from streamline_testing import InMemoryStore
from tests.conftest import Env


async def drive(env: Env, seconds: float = 5.0, rounds: int = 10) -> None:
    """Let time pass so retries and timers fire."""
    for _ in range(rounds):
        await env.clock.advance(seconds)
        await env.settle()


class EventRecorder:
    """An async observer that keeps every event it sees."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    async def streamline_event(self, event: Event) -> None:
        await asyncio.sleep(0)  # really async: awaited by the engine
        self.events.append(event)

    def names(self, run_id: str) -> list[str]:
        return [e.name for e in self.events if e.run_id == run_id]


# --- events ------------------------------------------------------------------------


async def test_hook_streamline_event(env: Env) -> None:
    recorder = EventRecorder()
    boom = ConnectionError("down")

    async def emits(ctx: StepContext) -> int:
        await ctx.emit("order:checked", {"ok": True})
        return 1

    async def fails(ctx: StepContext) -> None:
        raise boom

    async with env.engine(plugins=[recorder]) as engine:
        ok = engine.workflow("ok", steps={"a": emits, "b": lambda ctx: 2})
        bad = engine.workflow("bad", steps={"x": StepConfig(fails, retries=1)})
        good_run = await ok.start()
        bad_run = await bad.start()
        await ok.wait_for(good_run.id, timeout=10)
        await bad.wait_for(bad_run.id, timeout=10)

    assert recorder.names(good_run.id) == [
        "workflow:started",
        "step:started",
        "order:checked",
        "step:completed",
        "step:started",
        "step:completed",
        "workflow:completed",
    ]
    assert recorder.names(bad_run.id) == [
        "workflow:started",
        "step:started",
        "step:failed",
        "workflow:failed",
    ]
    completed = next(e for e in recorder.events if e.name == "workflow:completed")
    assert (completed.run_id, completed.workflow_id, completed.data) == (good_run.id, "ok", 2)
    step_failed, run_failed = (
        e for e in recorder.events if e.run_id == bad_run.id and e.name.endswith(":failed")
    )
    assert step_failed.step_id == "x"
    assert step_failed.error is boom
    assert step_failed.data == {"attempt": 1, "will_retry": False}
    assert run_failed.error is boom
    assert run_failed.data["error"]["step_id"] == "x"


async def test_event_observers_also_see_waits_retries_and_resumes(env: Env) -> None:
    recorder = EventRecorder()

    async def flaky(ctx: StepContext) -> str:
        if ctx.attempt == 1:
            raise ConnectionError("once")
        return "ok"

    async def ask(ctx: StepContext) -> None:
        await ctx.wait("approve?")

    async with env.engine(plugins=[recorder]) as engine:
        wf = engine.workflow("mixed", steps={"flaky": StepConfig(flaky, retry_delay=1), "ask": ask})
        run = await wf.start()
        await drive(env, 2, 3)
        await wf.resume(run.id, "yes")
        await wf.wait_for(run.id, timeout=10)

    assert recorder.names(run.id) == [
        "workflow:started",
        "step:started",
        "step:failed",
        "step:retry-scheduled",
        "workflow:retry",
        "step:started",
        "step:completed",
        "step:started",
        "step:waiting",
        "workflow:waiting",
        "workflow:resumed",
        "workflow:completed",
    ]


# --- step middleware -----------------------------------------------------------------


async def test_hook_streamline_before_step(env: Env) -> None:
    seen: list[tuple[str, str, int, int]] = []

    class Before:
        @hookimpl
        async def streamline_before_step(
            self, run: WorkflowRun, step: StepState, attempt: int
        ) -> None:
            seen.append((run.id, step.step_id, step.attempts, attempt))

    async def flaky(ctx: StepContext) -> str:
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt}")
        return "ok"

    async with env.engine(plugins=[Before()]) as engine:
        wf = engine.workflow(
            "before",
            steps={
                "skipped": StepConfig(lambda ctx: 0, skip_if=lambda ctx: True),
                "flaky": StepConfig(flaky, retries=3, retry_delay=1),
            },
        )
        run = await wf.start()
        await drive(env)
        done = await wf.wait_for(run.id, timeout=10)

    assert done.status == RunStatus.DONE
    # Once per attempt (never for a skipped step), with the step's state before the attempt.
    assert seen == [
        (run.id, "flaky", 0, 1),
        (run.id, "flaky", 1, 2),
        (run.id, "flaky", 2, 3),
    ]


async def test_before_step_runs_in_the_handlers_task(env: Env) -> None:
    import contextvars

    current: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="")
    in_handler: list[str] = []

    class SetsContext:
        @hookimpl
        def streamline_before_step(self, step: StepState) -> None:
            current.set(f"tracing {step.step_id}")

    async def handler(ctx: StepContext) -> None:
        in_handler.append(current.get())

    def sync_handler(ctx: StepContext) -> None:  # runs in a thread, with a copy of the context
        in_handler.append(current.get())

    async with env.engine(plugins=[SetsContext()]) as engine:
        wf = engine.workflow("ctx", steps={"a": handler, "b": sync_handler})
        await wf.wait_for((await wf.start()).id, timeout=10)
    assert in_handler == ["tracing a", "tracing b"]


async def test_hook_streamline_after_step(env: Env) -> None:
    seen: list[tuple[str, Any, bool]] = []
    engines: list[Engine] = []

    class After:
        @hookimpl
        async def streamline_after_step(
            self, run: WorkflowRun, step: StepState, output: Any
        ) -> None:
            stored = await engines[0].runs.get(run.id)
            assert stored is not None
            committed = stored.steps[run.step_index(step.step_id)].status == StepStatus.DONE
            seen.append((step.step_id, output, committed))

    async def ask(ctx: StepContext) -> None:
        await ctx.wait("approve?")

    async with env.engine(plugins=[After()]) as engine:
        engines.append(engine)
        wf = engine.workflow(
            "after",
            steps={"a": lambda ctx: {"n": 1}, "ask": ask, "b": lambda ctx: ("x", 2)},
        )
        run = await wf.start()
        await env.settle()
        await wf.resume(run.id, "yes")
        done = await wf.wait_for(run.id, timeout=10)

    assert done.status == RunStatus.DONE
    # The JSON-compatible output, before the commit; never for a step that suspended.
    assert seen == [("a", {"n": 1}, False), ("b", ["x", 2], False)]


async def test_hook_streamline_step_error(env: Env) -> None:
    errors: list[tuple[str, BaseException]] = []
    order: list[str] = []
    bad = ValueError("bad input")

    class OnError:
        @hookimpl
        def streamline_step_error(
            self, run: WorkflowRun, step: StepState, error: BaseException
        ) -> None:
            errors.append((step.step_id, error))
            order.append("step_error")

        @hookimpl
        def streamline_event(self, event: Event) -> None:
            if event.name == "step:failed":
                order.append("step:failed")

    async def raises(ctx: StepContext) -> None:
        raise bad

    async def hangs(ctx: StepContext) -> None:
        await asyncio.Event().wait()

    async with env.engine(plugins=[OnError()]) as engine:
        wf1 = engine.workflow("raises", steps={"r": StepConfig(raises, retries=1)})
        wf2 = engine.workflow("hangs", steps={"h": StepConfig(hangs, retries=1, timeout=5)})
        wf3 = engine.workflow("unstorable", steps={"u": lambda ctx: {1, 2}})
        runs = [await wf.start() for wf in (wf1, wf2, wf3)]
        await drive(env, 6, 3)
        for wf, run in zip((wf1, wf2, wf3), runs, strict=True):
            assert (await wf.wait_for(run.id, timeout=10)).status == RunStatus.FAILED

    by_step = dict(errors)
    assert by_step["r"] is bad
    assert isinstance(by_step["h"], StepTimeoutError)
    assert isinstance(by_step["u"], NonRetriableError)
    assert order == ["step_error", "step:failed"] * 3


# --- retry policy ------------------------------------------------------------------


async def test_hook_streamline_retry_delay(env: Env) -> None:
    asked: list[tuple[str, int, int]] = []

    class NoRetryOnValueError:
        @hookimpl
        def streamline_retry_delay(
            self, run: Any, step: Any, config: Any, attempt: int, error: BaseException
        ) -> Any:
            asked.append((type(error).__name__, attempt, config.retries))
            return GIVE_UP if isinstance(error, ValueError) else None

    calls = {"value": 0, "flaky": 0}

    async def value(ctx: StepContext) -> None:
        calls["value"] += 1
        raise ValueError("bad value")

    async def flaky(ctx: StepContext) -> str:
        calls["flaky"] += 1
        if ctx.attempt < 3:
            raise ConnectionError("transient")
        return "ok"

    async with env.engine(plugins=[NoRetryOnValueError()]) as engine:
        wf_value = engine.workflow("value", steps={"v": StepConfig(value, retries=4)})
        wf_flaky = engine.workflow("flaky", steps={"f": StepConfig(flaky, retries=4)})
        r_value = await wf_value.start()
        r_flaky = await wf_flaky.start()
        await drive(env)
        d_value = await wf_value.wait_for(r_value.id, timeout=10)
        d_flaky = await wf_flaky.wait_for(r_flaky.id, timeout=10)

    # GIVE_UP for ValueError: no retry, the run fails now.
    assert calls["value"] == 1
    assert d_value.status == RunStatus.FAILED
    assert d_value.error is not None
    assert d_value.error.code == ErrorCode.STEP_FAILED
    # None for anything else: no opinion, so the built-in backoff retried it.
    assert calls["flaky"] == 3
    assert d_flaky.status == RunStatus.DONE
    assert sorted(asked) == [
        ("ConnectionError", 1, 4),
        ("ConnectionError", 2, 4),
        ("ValueError", 1, 4),
    ]


async def test_retry_policies_are_asked_newest_first_and_none_passes_on(env: Env) -> None:
    asked: list[str] = []

    class NoOpinion:
        @hookimpl
        def streamline_retry_delay(self) -> None:
            asked.append("no-opinion")

    class Fixed:
        @hookimpl
        def streamline_retry_delay(self) -> float:
            asked.append("fixed")
            return 42.0

    async def once(ctx: StepContext) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("first")
        return "second"

    async with env.engine(plugins=[Fixed(), NoOpinion()]) as engine:
        wf = engine.workflow("order", steps={"once": once})
        run = await wf.start()
        await env.settle()
        waiting = await wf.get(run.id)
        assert waiting is not None
        assert waiting.next_run_at == env.clock.now() + timedelta(seconds=42)
        await env.clock.advance(42)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == "second"
    assert asked == ["no-opinion", "fixed"]


# --- scheduling --------------------------------------------------------------------


class RecordingClock(SystemClock):
    """Real time, but sleeps are recorded and only yield (so the test never waits)."""

    def __init__(self, wanted: int) -> None:
        self.sleeps: list[float] = []
        self.wanted = wanted
        self.enough = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) >= self.wanted:
            self.enough.set()
        await asyncio.sleep(0)


async def test_hook_streamline_poll_delay() -> None:
    stats_seen: list[dict[str, Any]] = []

    class FixedPoll:
        @hookimpl
        def streamline_poll_delay(self, stats: dict[str, Any]) -> float:
            stats_seen.append(dict(stats))
            return 0.125

    clock = RecordingClock(wanted=3)
    engine = Engine(
        InMemoryStore(),
        clock=clock,
        plugins=[FixedPoll()],
        min_poll_interval=2.0,
        max_poll_interval=4.0,
        load_entry_point_plugins=False,
    )
    engine.workflow("idle", steps={"a": lambda ctx: 1})
    async with engine:
        await asyncio.wait_for(clock.enough.wait(), timeout=10)

    # The idle worker slept exactly what the plugin answered, not the built-in backoff.
    assert clock.sleeps[:3] == [0.125, 0.125, 0.125]
    assert [s["idle_polls"] for s in stats_seen[:3]] == [1, 2, 3]
    assert stats_seen[0] == {
        "claimed": 0,
        "idle_polls": 1,
        "in_flight": 0,
        "free_slots": engine.max_concurrent_runs,
        "min_poll_interval": 2.0,
        "max_poll_interval": 4.0,
        "store_failures": 0,
    }


def test_a_poll_plugin_without_an_opinion_leaves_it_to_the_builtin_policy() -> None:
    class Quiet:
        @hookimpl
        def streamline_poll_delay(self, stats: dict[str, Any]) -> float | None:
            return 0.0 if stats["claimed"] else None

    engine = Engine(InMemoryStore(), plugins=[Quiet()], load_entry_point_plugins=False)
    stats = {
        "claimed": 0,
        "idle_polls": 2,
        "in_flight": 0,
        "free_slots": 1,
        "min_poll_interval": 1.0,
        "max_poll_interval": 100.0,
        "store_failures": 0,
    }
    assert 4.0 * 0.8 <= engine.plugins.poll_delay(stats) <= 4.0 * 1.2  # built-in: 1 × 2²
    assert engine.plugins.poll_delay({**stats, "claimed": 1}) == 0.0


def test_hook_streamline_next_occurrence() -> None:
    asked: list[str] = []

    class EverySeconds:
        @hookimpl
        def streamline_next_occurrence(self, schedule: Any, after: datetime) -> datetime | None:
            asked.append("every")
            if isinstance(schedule, dict) and "every" in schedule:
                return after + timedelta(seconds=schedule["every"])
            return None

    class Daily:
        @hookimpl
        def streamline_next_occurrence(self, schedule: Any, after: datetime) -> datetime | None:
            asked.append("daily")
            if schedule == "@daily":
                return (after + timedelta(days=1)).replace(hour=0, minute=0, second=0)
            return None

    class AlsoDaily:
        @hookimpl
        def streamline_next_occurrence(self, schedule: Any, after: datetime) -> datetime | None:
            asked.append("also-daily")
            return after + timedelta(hours=1) if schedule == "@daily" else None

    after = datetime(2030, 1, 1, 12, 30, tzinfo=UTC)
    engine = Engine(
        InMemoryStore(),
        plugins=[AlsoDaily(), EverySeconds(), Daily()],
        load_entry_point_plugins=False,
    )
    assert engine.plugins.next_occurrence({"every": 90}, after) == after + timedelta(seconds=90)
    assert engine.plugins.next_occurrence("0 * * * *", after) is None  # nobody knows the shape
    asked.clear()
    # firstresult: the newest registered plugin that answers wins; older ones are not asked.
    assert engine.plugins.next_occurrence("@daily", after) == datetime(2030, 1, 2, tzinfo=UTC)
    assert asked == ["daily"]
    assert (
        Engine(InMemoryStore(), load_entry_point_plugins=False).plugins.next_occurrence(
            "@daily", after
        )
        is None
    )  # the built-in cron and interval calculators answer only for a Recurrence


# --- rules ---------------------------------------------------------------------------


async def test_a_plugin_raising_in_an_observer_hook_is_reported_and_never_affects_execution(
    env: Env,
) -> None:
    reported: list[tuple[str | None, str]] = []

    class Broken:
        @hookimpl
        def streamline_event(self, event: Event) -> None:
            if event.name == "step:completed":
                raise RuntimeError("event bug")

        @hookimpl
        def streamline_before_step(self, step: StepState) -> None:
            raise RuntimeError(f"before bug in {step.step_id}")

        @hookimpl
        async def streamline_after_step(self, step: StepState) -> None:
            raise RuntimeError(f"after bug in {step.step_id}")

        @hookimpl
        def streamline_step_error(self, step: StepState) -> None:
            raise RuntimeError(f"error bug in {step.step_id}")

    survivor = EventRecorder()

    async def flaky(ctx: StepContext) -> int:
        if ctx.attempt == 1:
            raise ConnectionError("once")
        return 2

    async with env.engine(plugins=[survivor, Broken()]) as engine:
        engine.on("engine:error")(lambda e: reported.append((e.run_id, str(e.error))))
        wf = engine.workflow(
            "robust", steps={"a": lambda ctx: 1, "b": StepConfig(flaky, retry_delay=1)}
        )
        run = await wf.start()
        await drive(env, 2, 3)
        done = await wf.wait_for(run.id, timeout=10)

    assert done.status == RunStatus.DONE
    assert done.output == 2
    assert [s.attempts for s in done.steps] == [1, 2]
    assert sorted(msg for _, msg in reported) == sorted(
        [
            "before bug in a",
            "after bug in a",
            "event bug",
            "before bug in b",
            "error bug in b",
            "before bug in b",
            "after bug in b",
            "event bug",
        ]
    )
    assert {run_id for run_id, _ in reported} == {run.id}
    # The other observers still got every event.
    assert survivor.names(run.id)[-1] == "workflow:completed"


@pytest.mark.parametrize("hook_name", sorted(FIRSTRESULT_HOOKS))
def test_an_async_firstresult_implementation_is_refused_naming_the_hook(hook_name: str) -> None:
    async def impl(self: Any) -> None:
        return None

    plugin_class = type("AsyncPolicy", (), {hook_name: hookimpl(impl)})
    with pytest.raises(ValidationError, match=hook_name):
        Engine(InMemoryStore(), plugins=[plugin_class()], load_entry_point_plugins=False)

    engine = Engine(InMemoryStore(), load_entry_point_plugins=False)
    late = plugin_class()
    with pytest.raises(ValidationError, match=hook_name):
        engine.plugins.register(late)
    assert late not in engine.plugins.pm.get_plugins()


# --- entry points --------------------------------------------------------------------


def install_entry_point(monkeypatch: pytest.MonkeyPatch, name: str, plugin: object) -> None:
    """Make ``plugin`` look like an installed distribution's ``streamline`` entry point."""
    module = types.ModuleType("fake_streamline_plugin_dist")
    module.plugin = plugin  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    entry_point = importlib.metadata.EntryPoint(
        name=name, value=f"{module.__name__}:plugin", group="streamline"
    )
    dist = types.SimpleNamespace(entry_points=[entry_point], metadata={"Name": "fake-dist"})
    # pluggy's load_setuptools_entrypoints walks importlib.metadata.distributions().
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [dist])


async def test_entry_point_plugins_are_loaded_under_their_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STREAMLINE_DISABLE_PLUGINS", raising=False)
    recorder = EventRecorder()
    install_entry_point(monkeypatch, "recorder", recorder)

    engine = Engine(InMemoryStore())
    assert engine.plugins.pm.get_plugin("recorder") is recorder
    async with engine:
        wf = engine.workflow("ep", steps={"a": lambda ctx: 1})
        run = await wf.start()
        await wf.wait_for(run.id, timeout=10)
    assert recorder.names(run.id)[-1] == "workflow:completed"

    assert (
        Engine(InMemoryStore(), load_entry_point_plugins=False).plugins.pm.get_plugin("recorder")
        is None
    )


async def test_streamline_disable_plugins_blocks_entry_point_plugins_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = EventRecorder()
    install_entry_point(monkeypatch, "recorder", recorder)
    monkeypatch.setenv("STREAMLINE_DISABLE_PLUGINS", "something-else, recorder")

    engine = Engine(InMemoryStore())
    assert engine.plugins.pm.get_plugin("recorder") is None
    assert recorder not in engine.plugins.pm.get_plugins()
    async with engine:
        wf = engine.workflow("blocked", steps={"a": lambda ctx: 1})
        await wf.wait_for((await wf.start()).id, timeout=10)
    assert recorder.events == []


def test_plugins_given_in_code_are_asked_before_entry_point_plugins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STREAMLINE_DISABLE_PLUGINS", raising=False)

    class Answer:
        def __init__(self, value: float) -> None:
            self.value = value

        @hookimpl
        def streamline_poll_delay(self) -> float:
            return self.value

    install_entry_point(monkeypatch, "from-entry-point", Answer(1.0))
    engine = Engine(InMemoryStore(), plugins=[Answer(2.0)])
    assert engine.plugins.poll_delay({"max_poll_interval": 9.0}) == 2.0


# --- retention ---------------------------------------------------------------------


async def test_hook_streamline_archive(env: Env) -> None:
    seen: list[list[str]] = []

    class SyncArchive:
        @hookimpl
        def streamline_archive(self, runs: list[WorkflowRun]) -> None:
            seen.append([r.workflow_id for r in runs])

    async with env.engine(plugins=[SyncArchive()]) as engine:
        wf = engine.workflow("archived", steps={"a": lambda ctx: 1})
        ids = [(await wf.start()).id for _ in range(3)]
        for run_id in ids:
            await wf.wait_for(run_id, timeout=60)
        await env.clock.advance(10)
        assert await engine.runs.prune(status="done", older_than=5) == 3
    assert seen == [["archived"] * 3]
