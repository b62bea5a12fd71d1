"""OpenTelemetry tracing of Streamline runs and steps (see the package docstring for the model)."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import OrderedDict
from contextvars import Token
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode

from streamline_core.hooks import hookimpl

if TYPE_CHECKING:
    from streamline_core.events import Event
    from streamline_core.run import StepState, WorkflowRun

__all__ = ["StreamlineTracing", "PENDING_TTL"]

log = logging.getLogger("streamline.otel")

PENDING_TTL: Final = 60.0
"""Seconds a run started or resumed here may take to begin executing here and
still get a segment that starts at that call and is a child of its caller's span."""

_NS: Final = 1_000_000_000

# Scalar event data copied onto span events (never payloads: outputs, inputs, wait data).
_DATA_ATTRIBUTES: Final = {
    "attempt": "streamline.attempt",
    "delay": "streamline.retry.delay",
    "kind": "streamline.wait.kind",
    "event": "streamline.wait.event",
    "recoveries": "streamline.recoveries",
}


def _library_version() -> str | None:
    try:
        return metadata.version("streamline")
    except metadata.PackageNotFoundError:  # running from a source tree
        return None


@dataclass(eq=False)
class _Step:
    """The span of one step attempt."""

    step_id: str
    span: Span
    token: Token[otel_context.Context] | None


@dataclass(eq=False)
class _Segment:
    """The span of one process-local execution segment of a run."""

    run_id: str
    span: Span
    last_ns: int
    step: _Step | None = None
    parked: asyncio.TimerHandle | None = None


@dataclass(frozen=True)
class _Pending:
    """A run started or resumed here that has not executed here yet (no span)."""

    at_ns: int
    cause: str
    parent: otel_context.Context = field(repr=False)


class StreamlineTracing:
    """A Streamline plugin that traces runs and step attempts with OpenTelemetry.

    Register it like any plugin: ``Engine(store, plugins=[StreamlineTracing()])``.
    One instance may serve several engines (the entry-point form does): its
    state is keyed by run id and guarded by a lock.

    Args:
        tracer_provider: Where spans go; ``None`` uses the global provider
            (``opentelemetry.trace.set_tracer_provider``).
        resume_window: Seconds a suspended run's segment stays open in case this
            process continues the run (a retry backoff adds its delay to this).
            If it does not, the segment is ended as of the moment the run
            suspended. ``0`` ends segments as soon as runs suspend, retries included.
        max_open_runs: Most segments kept open at once; beyond it the least
            recently active one is ended with outcome ``evicted``.
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        *,
        resume_window: float = 30.0,
        max_open_runs: int = 10_000,
    ) -> None:
        if not (resume_window >= 0 and math.isfinite(resume_window)):
            raise ValueError(f"resume_window must be a finite number >= 0, got {resume_window!r}")
        if max_open_runs < 1:
            raise ValueError(f"max_open_runs must be >= 1, got {max_open_runs!r}")
        self._tracer = trace.get_tracer(
            "streamline_otel", _library_version(), tracer_provider=tracer_provider
        )
        self.resume_window = resume_window
        self.max_open_runs = max_open_runs
        self._segments: OrderedDict[str, _Segment] = OrderedDict()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._previous: OrderedDict[str, SpanContext] = OrderedDict()
        # The entry-point instance is shared by every engine of the process, which may
        # run on several threads' loops: state changes are serialised.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<StreamlineTracing open_segments={len(self._segments)}>"

    @property
    def open_segments(self) -> int:
        """How many run segment spans are open (including suspended ones kept for resumption)."""
        return len(self._segments)

    def close(self) -> None:
        """End every span still open (outcome ``closed``) and forget all state.

        The engine has no shutdown hook, so call this after ``engine.shutdown()``
        and before shutting the tracer provider down, or spans of runs that were
        suspended within the last ``resume_window`` seconds are never exported.
        """
        with self._lock:
            for seg in list(self._segments.values()):
                self._end(seg, "closed", end_ns=seg.last_ns if seg.parked else None)
            self._pending.clear()
            self._previous.clear()

    # --- hooks ---------------------------------------------------------------------

    @hookimpl
    def streamline_event(self, event: Event) -> None:
        """Open, annotate, suspend and end spans from lifecycle events."""
        if event.run_id is not None:
            with self._lock:
                self._on_event(event, event.run_id)

    @hookimpl
    def streamline_before_step(self, run: WorkflowRun, step: StepState, attempt: int) -> None:
        """Open the attempt's span and make it current while the handler runs."""
        with self._lock:
            self._start_attempt(run, step, attempt)

    @hookimpl
    def streamline_after_step(self, run: WorkflowRun, step: StepState, output: Any) -> None:
        """The handler returned: stop being the current span (the span ends at commit)."""
        with self._lock:
            attempt = self._attempt(run.id, step.step_id)
            if attempt is not None:
                _detach(attempt)

    @hookimpl
    def streamline_step_error(
        self, run: WorkflowRun, step: StepState, error: BaseException
    ) -> None:
        """The attempt raised: record the exception and mark the span as an error."""
        with self._lock:
            attempt = self._attempt(run.id, step.step_id)
            if attempt is None:
                return
            attempt.span.record_exception(error)
            attempt.span.set_status(Status(StatusCode.ERROR, _describe(error)))
            _detach(attempt)

    # --- event handling ------------------------------------------------------------

    def _on_event(self, event: Event, run_id: str) -> None:
        name = event.name
        if name in ("workflow:started", "workflow:resumed"):
            self._client_action(event, run_id, name.partition(":")[2])
        elif name in ("workflow:completed", "workflow:failed", "workflow:cancelled"):
            self._run_ended(event, run_id, name.partition(":")[2])
        elif name in ("workflow:waiting", "workflow:retry"):
            self._suspended(event, run_id)
        elif name.startswith("step:") or name == "workflow:recovered":
            self._step_event(event, run_id)
        elif name in ("engine:error", "scheduler:error"):
            seg = self._segments.get(run_id)
            if seg is not None and event.error is not None:
                target = seg.step.span if seg.step is not None else seg.span
                target.record_exception(event.error, attributes={"streamline.event": name})
        else:  # a custom ctx.emit
            seg = self._segments.get(run_id)
            if seg is not None:
                target = seg.step.span if seg.step is not None else seg.span
                target.add_event(name, _event_attributes(event))

    def _start_attempt(self, run: WorkflowRun, step: StepState, attempt: int) -> None:
        seg = self._segment(run.id, run.workflow_id)
        seg.span.set_attribute("streamline.workflow_version", run.workflow_version)
        if seg.step is not None:  # an attempt that never reported its outcome
            self._end_step(seg, "abandoned")
        span = self._tracer.start_span(
            f"step {step.step_id}",
            context=trace.set_span_in_context(seg.span),
            kind=SpanKind.INTERNAL,
            attributes={
                "streamline.run_id": run.id,
                "streamline.workflow_id": run.workflow_id,
                "streamline.workflow_version": run.workflow_version,
                "streamline.step_id": step.step_id,
                "streamline.attempt": attempt,
            },
        )
        # Called in the task that runs the handler: spans the handler makes nest here.
        token = otel_context.attach(trace.set_span_in_context(span))
        seg.step = _Step(step.step_id, span, token)

    def _client_action(self, event: Event, run_id: str, cause: str) -> None:
        seg = self._segments.get(run_id)
        if seg is not None:  # e.g. resumed while its segment is kept open here
            seg.span.add_event(event.name)
            self._touch(seg)
            return
        self._pending[run_id] = _Pending(time.time_ns(), cause, otel_context.get_current())
        self._pending.move_to_end(run_id)
        while len(self._pending) > self.max_open_runs:
            self._pending.popitem(last=False)

    def _run_ended(self, event: Event, run_id: str, outcome: str) -> None:
        seg = self._segment(run_id, event.workflow_id, cause=outcome)
        if outcome == "failed":
            message = _run_error_message(event)
            if event.error is not None:
                seg.span.record_exception(event.error)
            seg.span.set_status(Status(StatusCode.ERROR, message))
        self._end(seg, outcome)

    def _suspended(self, event: Event, run_id: str) -> None:
        seg = self._segments.get(run_id)
        if seg is None:
            return
        seg.span.add_event(event.name, _event_attributes(event))
        self._touch(seg)
        window = self.resume_window
        if window <= 0:
            self._end(seg, "suspended")
            return
        if event.name == "workflow:retry" and isinstance(event.data, dict):
            delay = event.data.get("delay")
            if isinstance(delay, int | float) and math.isfinite(delay) and delay > 0:
                window += float(delay)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._end(seg, "suspended")
            return
        self._unpark(seg)
        seg.parked = loop.call_later(window, self._expire, seg)

    def _step_event(self, event: Event, run_id: str) -> None:
        name = event.name
        cause = "recovered" if name == "workflow:recovered" else "claimed"
        seg = self._segment(run_id, event.workflow_id, cause)
        attempt = seg.step
        if attempt is not None and attempt.step_id != event.step_id:
            self._end_step(seg, "abandoned")
            attempt = None
        if name in ("step:completed", "step:failed", "step:waiting") and attempt is not None:
            if name == "step:failed" and isinstance(event.data, dict):
                attempt.span.set_attribute(
                    "streamline.will_retry", bool(event.data.get("will_retry"))
                )
            self._end_step(seg, name.partition(":")[2])
        elif name != "step:started":  # skipped, retry-scheduled, recovered, a wait completing
            seg.span.add_event(name, _event_attributes(event))

    # --- segments ------------------------------------------------------------------

    def _segment(self, run_id: str, workflow_id: str | None, cause: str = "claimed") -> _Segment:
        """The run's open segment (continuing a suspended one), or a new one."""
        seg = self._segments.get(run_id)
        if seg is not None:
            self._unpark(seg)
            self._touch(seg)
            return seg
        now = time.time_ns()
        pending = self._pending.pop(run_id, None)
        if pending is not None and now - pending.at_ns > PENDING_TTL * _NS:
            pending = None
        attributes: dict[str, str] = {
            "streamline.run_id": run_id,
            "streamline.segment.cause": pending.cause if pending is not None else cause,
        }
        if workflow_id is not None:
            attributes["streamline.workflow_id"] = workflow_id
        previous = self._previous.pop(run_id, None)
        span = self._tracer.start_span(
            f"workflow {workflow_id}" if workflow_id is not None else "workflow",
            # A worker claiming a run starts a new trace; a run started or resumed
            # here continues the caller's trace (e.g. the request that started it).
            context=pending.parent if pending is not None else otel_context.Context(),
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            links=[Link(previous)] if previous is not None else (),
            start_time=pending.at_ns if pending is not None else now,
        )
        seg = _Segment(run_id, span, now)
        self._segments[run_id] = seg
        while len(self._segments) > self.max_open_runs:
            _, oldest = next(iter(self._segments.items()))
            self._end(oldest, "evicted", end_ns=oldest.last_ns)
        return seg

    def _touch(self, seg: _Segment) -> None:
        seg.last_ns = time.time_ns()
        self._segments.move_to_end(seg.run_id)

    def _attempt(self, run_id: str, step_id: str) -> _Step | None:
        seg = self._segments.get(run_id)
        if seg is None or seg.step is None or seg.step.step_id != step_id:
            return None
        return seg.step

    def _unpark(self, seg: _Segment) -> None:
        if seg.parked is not None:
            seg.parked.cancel()
            seg.parked = None

    def _expire(self, seg: _Segment) -> None:
        """A suspended segment was not continued in time: end it when it suspended."""
        with self._lock:
            if seg.parked is not None and self._segments.get(seg.run_id) is seg:
                self._end(seg, "suspended", end_ns=seg.last_ns)

    def _end_step(self, seg: _Segment, outcome: str, end_ns: int | None = None) -> None:
        attempt, seg.step = seg.step, None
        if attempt is None:
            return
        _detach(attempt)
        attempt.span.set_attribute("streamline.step.outcome", outcome)
        attempt.span.end(end_time=end_ns)

    def _end(self, seg: _Segment, outcome: str, end_ns: int | None = None) -> None:
        self._unpark(seg)
        if self._segments.get(seg.run_id) is seg:
            del self._segments[seg.run_id]
        self._end_step(seg, outcome, end_ns)
        seg.span.set_attribute("streamline.outcome", outcome)
        seg.span.end(end_time=end_ns)
        # Remembered (bounded) so this run's next segment here links back to this one.
        self._previous[seg.run_id] = seg.span.get_span_context()
        self._previous.move_to_end(seg.run_id)
        while len(self._previous) > self.max_open_runs:
            self._previous.popitem(last=False)


def _detach(attempt: _Step) -> None:
    """Undo ``attach`` if we are still in the context that made the attempt current."""
    token, attempt.token = attempt.token, None
    if token is not None and trace.get_current_span() is attempt.span:
        otel_context.detach(token)


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _run_error_message(event: Event) -> str:
    data = event.data
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = error.get("code")
            return f"{code}: {error['message']}" if isinstance(code, str) else error["message"]
    return _describe(event.error) if event.error is not None else "workflow failed"


def _event_attributes(event: Event) -> dict[str, str | int | float | bool]:
    """Small, scalar facts about an event (never its payload, which may be large or private)."""
    attributes: dict[str, str | int | float | bool] = {}
    if event.step_id is not None:
        attributes["streamline.step_id"] = event.step_id
    data = event.data
    if isinstance(data, dict):
        for key, attribute in _DATA_ATTRIBUTES.items():
            value = data.get(key)
            if isinstance(value, str | int | float | bool):
                attributes[attribute] = value
    return attributes
