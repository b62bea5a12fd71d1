"""The OpenTelemetry plugin: the span tree of runs, attempts, failures and suspensions."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
import types
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import streamline_otel.plugin
from streamline_core import Engine, RunStatus, StepConfig, StepContext, hookimpl
from streamline_otel import StreamlineTracing
from streamline_testing import InMemoryStore
from tests.conftest import Env


@pytest.fixture(autouse=True)
def context_is_always_restored(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The step span is made current and restored; OpenTelemetry logs a failed restore."""
    yield
    assert not [r for r in caplog.records if "detach" in r.getMessage()]


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider, exporter
    tracer_provider.shutdown()


def describe(span: ReadableSpan) -> str:
    attrs = span.attributes or {}
    text = span.name
    if "streamline.attempt" in attrs:
        text += f" #{attrs['streamline.attempt']!r}"
    outcome = attrs.get("streamline.outcome", attrs.get("streamline.step.outcome"))
    if outcome is not None:
        text += f" {outcome}"
    if span.status.status_code == StatusCode.ERROR:
        text += " ERROR"
    return text


def tree(exporter: InMemorySpanExporter) -> list[str]:
    """Finished spans as an indented outline, children under parents, in start order."""
    spans = exporter.get_finished_spans()
    ids = {s.context.span_id for s in spans if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for s in spans:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        children[parent].append(s)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for s in sorted(children[parent], key=lambda s: s.start_time or 0):
            lines.append("  " * depth + describe(s))
            assert s.context is not None
            walk(s.context.span_id, depth + 1)

    walk(None, 0)
    return lines


def spans_named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    found = [s for s in exporter.get_finished_spans() if s.name == name]
    return sorted(found, key=lambda s: s.start_time or 0)


def exception_types(span: ReadableSpan) -> list[str]:
    return [
        str((e.attributes or {}).get("exception.type"))
        for e in span.events
        if e.name == "exception"
    ]


async def test_a_three_step_run_is_one_workflow_span_with_a_span_per_step(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    tracing = StreamlineTracing(tracer_provider)
    async with env.engine(plugins=[tracing]) as engine:
        wf = engine.workflow(
            "three", steps={"a": lambda c: 1, "b": lambda c: 2, "c": lambda c: 3}, version="7"
        )
        run = await wf.start()
        assert (await wf.wait_for(run.id, timeout=10)).status == RunStatus.DONE

    assert tree(exporter) == [
        "workflow three completed",
        "  step a #1 completed",
        "  step b #1 completed",
        "  step c #1 completed",
    ]
    (workflow,) = spans_named(exporter, "workflow three")
    assert workflow.attributes == {
        "streamline.run_id": run.id,
        "streamline.workflow_id": "three",
        "streamline.workflow_version": "7",
        "streamline.segment.cause": "started",
        "streamline.outcome": "completed",
    }
    assert workflow.status.status_code == StatusCode.UNSET
    step_b = spans_named(exporter, "step b")[0]
    assert step_b.attributes == {
        "streamline.run_id": run.id,
        "streamline.workflow_id": "three",
        "streamline.workflow_version": "7",
        "streamline.step_id": "b",
        "streamline.attempt": 1,
        "streamline.step.outcome": "completed",
    }
    assert {s.context.trace_id for s in exporter.get_finished_spans() if s.context} == {
        workflow.context.trace_id if workflow.context else 0
    }
    assert tracing.open_segments == 0


async def _pay_after_one_failure(
    env: Env, tracing: StreamlineTracing, *, ship: bool = False
) -> None:
    """Run workflow "pay": step "charge" fails once, succeeds on its retry 1 s later."""

    async def flaky(ctx: StepContext) -> str:
        if ctx.attempt == 1:
            raise ConnectionError("gateway down")
        return "paid"

    steps: dict[str, Any] = {"charge": StepConfig(flaky, retry_delay=1)}
    if ship:
        steps["ship"] = lambda c: 1
    async with env.engine(plugins=[tracing]) as engine:
        wf = engine.workflow("pay", steps=steps)
        run = await wf.start()
        for _ in range(3):
            await env.clock.advance(2)
            await env.settle()
        assert (await wf.wait_for(run.id, timeout=10)).status == RunStatus.DONE


async def test_a_retried_step_has_two_attempt_spans_the_first_with_its_error(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    await _pay_after_one_failure(env, StreamlineTracing(tracer_provider), ship=True)

    # The backoff is short, so this process continued the run: one segment.
    assert tree(exporter) == [
        "workflow pay completed",
        "  step charge #1 failed ERROR",
        "  step charge #2 completed",
        "  step ship #1 completed",
    ]
    first, second = spans_named(exporter, "step charge")
    assert exception_types(first) == ["ConnectionError"]
    assert first.status.description == "ConnectionError: gateway down"
    assert (first.attributes or {})["streamline.will_retry"] is True
    assert exception_types(second) == []
    (workflow,) = spans_named(exporter, "workflow pay")
    assert [e.name for e in workflow.events] == ["step:retry-scheduled", "workflow:retry"]


async def test_a_failed_run_records_the_error_on_its_step_and_workflow_spans(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider

    async def broken(ctx: StepContext) -> None:
        raise ValueError("bad order")

    async with env.engine(plugins=[StreamlineTracing(tracer_provider)]) as engine:
        wf = engine.workflow("order", steps={"a": lambda c: 1, "b": StepConfig(broken, retries=1)})
        run = await wf.start()
        assert (await wf.wait_for(run.id, timeout=10)).status == RunStatus.FAILED

    assert tree(exporter) == [
        "workflow order failed ERROR",
        "  step a #1 completed",
        "  step b #1 failed ERROR",
    ]
    (workflow,) = spans_named(exporter, "workflow order")
    assert exception_types(workflow) == ["ValueError"]
    assert (
        workflow.status.description
        == "MAX_RETRIES_EXCEEDED: step 'b' failed after 1 attempt(s): bad order"
    )
    (step_b,) = spans_named(exporter, "step b")
    assert exception_types(step_b) == ["ValueError"]
    assert (step_b.attributes or {})["streamline.will_retry"] is False


async def test_a_suspending_run_is_traced_as_one_segment_per_execution(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    tracing = StreamlineTracing(tracer_provider, resume_window=0)

    async def ask(ctx: StepContext) -> None:
        await ctx.wait("approve?")

    async with env.engine(plugins=[tracing]) as engine:
        wf = engine.workflow(
            "approval", steps={"draft": lambda c: 1, "ask": ask, "send": lambda c: 2}
        )
        run = await wf.start()
        await env.settle()
        # Suspended: its segment is ended and nothing is kept for it.
        assert tree(exporter) == [
            "workflow approval suspended",
            "  step draft #1 completed",
            "  step ask #1 waiting",
        ]
        assert tracing.open_segments == 0
        await env.clock.advance(3 * 86400)
        await wf.resume(run.id, "yes")
        assert (await wf.wait_for(run.id, timeout=10)).status == RunStatus.DONE

    assert tree(exporter) == [
        "workflow approval suspended",
        "  step draft #1 completed",
        "  step ask #1 waiting",
        "workflow approval completed",
        "  step send #1 completed",
    ]
    first, second = spans_named(exporter, "workflow approval")
    assert (first.attributes or {})["streamline.run_id"] == run.id
    assert (second.attributes or {})["streamline.run_id"] == run.id
    assert (second.attributes or {})["streamline.segment.cause"] == "resumed"
    assert [link.context for link in second.links] == [first.context]
    assert [e.name for e in first.events] == ["workflow:waiting"]


async def test_a_run_resumed_within_the_window_keeps_one_segment(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider

    async def ask(ctx: StepContext) -> None:
        await ctx.wait("approve?")

    async with env.engine(plugins=[StreamlineTracing(tracer_provider)]) as engine:
        wf = engine.workflow("quick", steps={"ask": ask, "send": lambda c: 2})
        run = await wf.start()
        await env.settle()
        await wf.resume(run.id, "yes")
        await wf.wait_for(run.id, timeout=10)

    assert tree(exporter) == [
        "workflow quick completed",
        "  step ask #1 waiting",
        "  step send #1 completed",
    ]
    (workflow,) = spans_named(exporter, "workflow quick")
    assert [e.name for e in workflow.events] == ["workflow:waiting", "workflow:resumed"]


async def test_a_suspended_segment_not_continued_here_ends_as_of_its_suspension(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    tracing = StreamlineTracing(tracer_provider, resume_window=0.01)

    async def ask(ctx: StepContext) -> None:
        await ctx.wait("approve?")

    async with env.engine(plugins=[tracing]) as engine:
        wf = engine.workflow("parked", steps={"ask": ask})
        await wf.start()
        await env.settle()
        suspended_by = time.time_ns()
        for _ in range(500):  # the window is real time: wait for the timer, at most 5 s
            if not tracing.open_segments:
                break
            await asyncio.sleep(0.01)
    assert tree(exporter) == ["workflow parked suspended", "  step ask #1 waiting"]
    (workflow,) = spans_named(exporter, "workflow parked")
    assert workflow.end_time is not None
    assert workflow.end_time <= suspended_by


async def test_spans_made_by_a_handler_nest_under_its_step_span(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    tracer = tracer_provider.get_tracer("app")

    async def fetch(ctx: StepContext) -> int:
        with tracer.start_as_current_span("GET /inventory"):
            await asyncio.sleep(0)
        return 1

    def compute(ctx: StepContext) -> int:  # a sync handler runs in a thread
        with tracer.start_as_current_span("crunch"):
            return 2

    async def nothing(ctx: StepContext) -> int:
        assert trace.get_current_span().name == "step last"  # type: ignore[attr-defined]
        return 3

    async with env.engine(plugins=[StreamlineTracing(tracer_provider)]) as engine:
        wf = engine.workflow("nest", steps={"fetch": fetch, "compute": compute, "last": nothing})
        run = await wf.start()
        assert (await wf.wait_for(run.id, timeout=10)).status == RunStatus.DONE

    assert tree(exporter) == [
        "workflow nest completed",
        "  step fetch #1 completed",
        "    GET /inventory",
        "  step compute #1 completed",
        "    crunch",
        "  step last #1 completed",
    ]


async def test_a_run_started_inside_a_span_continues_its_trace(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    tracer = tracer_provider.get_tracer("app")
    async with env.engine(plugins=[StreamlineTracing(tracer_provider)]) as engine:
        wf = engine.workflow("child", steps={"a": lambda c: 1})
        with tracer.start_as_current_span("POST /orders"):
            run = await wf.start()
        await wf.wait_for(run.id, timeout=10)

    assert tree(exporter) == [
        "POST /orders",
        "  workflow child completed",
        "    step a #1 completed",
    ]


async def test_a_run_claimed_by_a_worker_starts_its_own_trace_and_the_client_keeps_nothing(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    client_tracing = StreamlineTracing(tracer_provider)
    client = env.engine(plugins=[client_tracing])
    client_wf = client.workflow("remote", steps={"a": lambda c: 1})
    run = await client_wf.start()  # the client is not started: it only creates the run
    assert tree(exporter) == []

    worker = env.engine(plugins=[StreamlineTracing(tracer_provider)], worker_id="w")
    worker.workflow("remote", steps={"a": lambda c: 1})
    async with worker:
        await env.clock.advance(1)
        await env.settle()
        assert (await client_wf.wait_for(run.id, timeout=10)).status == RunStatus.DONE

    assert tree(exporter) == ["workflow remote completed", "  step a #1 completed"]
    (workflow,) = spans_named(exporter, "workflow remote")
    assert workflow.parent is None
    assert (workflow.attributes or {})["streamline.segment.cause"] == "claimed"
    assert client_tracing.open_segments == 0


async def test_a_cancelled_run_ends_its_spans(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    started = asyncio.Event()

    async def hangs(ctx: StepContext) -> None:
        started.set()
        await asyncio.Event().wait()

    tracing = StreamlineTracing(tracer_provider)
    async with env.engine(plugins=[tracing]) as engine:
        wf = engine.workflow("cancel", steps={"hangs": hangs})
        run = await wf.start()
        await asyncio.wait_for(started.wait(), timeout=10)
        await wf.cancel(run.id, "changed my mind")
        await wf.wait_for(run.id, timeout=10)

    assert tree(exporter) == ["workflow cancel cancelled", "  step hangs #1 cancelled"]
    assert tracing.open_segments == 0


async def test_open_segments_are_bounded_and_close_ends_the_rest(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    tracing = StreamlineTracing(tracer_provider, resume_window=3600, max_open_runs=2)

    async def ask(ctx: StepContext) -> None:
        await ctx.wait("approve?")

    async with env.engine(plugins=[tracing]) as engine:
        wf = engine.workflow("many", steps={"ask": ask})
        for _ in range(3):
            await wf.start()
            await env.settle()
        assert tracing.open_segments == 2
        assert [describe(s) for s in spans_named(exporter, "workflow many")] == [
            "workflow many evicted"
        ]
    tracing.close()
    assert tracing.open_segments == 0
    assert [describe(s) for s in spans_named(exporter, "workflow many")] == [
        "workflow many evicted",
        "workflow many closed",
        "workflow many closed",
    ]


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="resume_window"):
        StreamlineTracing(resume_window=-1)
    with pytest.raises(ValueError, match="max_open_runs"):
        StreamlineTracing(max_open_runs=0)


def test_the_documented_entry_point_registers_the_shared_instance_and_can_be_blocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry_point = importlib.metadata.EntryPoint(
        name="otel", value="streamline_otel.plugin:tracing", group="streamline"
    )
    dist = types.SimpleNamespace(entry_points=[entry_point], metadata={"Name": "my-app"})
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: [dist])
    monkeypatch.delenv("STREAMLINE_DISABLE_PLUGINS", raising=False)

    assert Engine(InMemoryStore()).plugins.pm.get_plugin("otel") is streamline_otel.plugin.tracing

    monkeypatch.setenv("STREAMLINE_DISABLE_PLUGINS", "otel")
    assert Engine(InMemoryStore()).plugins.pm.get_plugin("otel") is None


async def test_without_a_resume_window_every_retry_is_a_new_linked_segment(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    await _pay_after_one_failure(env, StreamlineTracing(tracer_provider, resume_window=0))

    assert tree(exporter) == [
        "workflow pay suspended",
        "  step charge #1 failed ERROR",
        "workflow pay completed",
        "  step charge #2 completed",
    ]
    first, second = spans_named(exporter, "workflow pay")
    assert [link.context for link in second.links] == [first.context]
    assert (second.attributes or {})["streamline.segment.cause"] == "claimed"


async def test_a_failing_plugin_is_recorded_on_the_attempt_without_failing_it(
    env: Env, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider

    class Broken:
        @hookimpl
        def streamline_before_step(self) -> None:
            raise RuntimeError("plugin bug")

    async with env.engine(plugins=[StreamlineTracing(tracer_provider), Broken()]) as engine:
        wf = engine.workflow("robust", steps={"a": lambda c: 1})
        run = await wf.start()
        assert (await wf.wait_for(run.id, timeout=10)).status == RunStatus.DONE

    assert tree(exporter) == ["workflow robust completed", "  step a #1 completed"]
    (step,) = spans_named(exporter, "step a")
    (event,) = step.events
    assert (event.attributes or {})["exception.type"] == "RuntimeError"
    assert (event.attributes or {})["streamline.event"] == "engine:error"
