"""The run page's step timeline: a bar per step, cut into its attempts and waits.

Drawn only from what the run document stores, so it says what it does not
know. A :class:`~streamline_core.StepState` keeps the *last* attempt's
start (``started_at`` is reset when a retry begins), the step's end, the
number of committed attempts, the last error (cleared when the step
succeeds) and the current wait (cleared when it ends). So:

- the last attempt is drawn exactly (start, end, outcome, error);
- earlier attempts and the retry waits between them are one segment, from
  the end of the previous step (or the run's creation) to the last
  attempt's start: their individual times and errors are not stored;
- a step that is waiting (retry backoff, ``sleep``, ``wait_for``,
  ``wait``) shows the attempt that suspended — ending by the run's last
  write, an upper bound — and then the wait, up to the run's end or now;
- once a wait ended, the document no longer says the step waited: a
  finished step's bar covers its execution and any wait alike;
- an attempt lost to a crash commits nothing, so it is not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from streamline_core import StepState, StepStatus, WorkflowRun

__all__ = [
    "MIN_WIDTH",
    "Bar",
    "Segment",
    "axis_text",
    "duration_text",
    "span_of",
    "stamp",
    "timeline",
]

MIN_WIDTH = 0.8
"""Percent: an instant segment still shows as a visible sliver."""

SegmentKind = Literal["attempt", "earlier", "wait", "retry"]


def duration_text(seconds: float) -> str:
    """``0.25 s``, ``12 s``, ``3 m 04 s``, ``2 h 05 m``, ``3 d 4 h``."""
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def axis_text(seconds: float) -> str:
    """A time-axis label: ``0.138 s``, ``2.5 s``, ``8 s``, then as :func:`duration_text`."""
    return f"{max(seconds, 0.0):.3g} s" if seconds < 10 else duration_text(seconds)


def stamp(value: datetime) -> str:
    """``2030-01-01 00:00:00.120 UTC``: milliseconds, since steps are often that short."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


@dataclass(frozen=True)
class Segment:
    """One piece of a step's bar, in percent of the run's span.

    Attributes:
        kind: ``attempt`` (an attempt with stored times), ``earlier`` (attempts
            and retry waits whose times are not stored), ``wait`` (sleep,
            ``wait_for``, ``wait``) or ``retry`` (backoff before the next attempt).
        outcome: A status-like class: ``done``, ``failed``, ``running``,
            ``waiting``, ``skipped``, ``queued`` or ``cancelled``.
        label: Short text (``attempt 2``, ``retry wait``).
        detail: The whole story for the tooltip and the list under the bar.
        seconds: How long the segment lasted (so far).
        open_end: Still going at the right edge (an active run).
        exact: False when the segment's length is not known (drawn as a sliver).
    """

    kind: SegmentKind
    outcome: str
    left: float
    width: float
    label: str
    detail: str
    seconds: float
    open_end: bool = False
    exact: bool = True

    @property
    def duration(self) -> str:
        """The segment's length for people (``?`` when not known)."""
        return duration_text(self.seconds) if self.exact else "?"


@dataclass(frozen=True)
class Bar:
    """One step's row of the timeline.

    Attributes:
        step: The stored step.
        left: Where its first segment starts (percent of the span).
        width: From there to its last segment's end (percent).
        duration: The step's length, all its segments together.
        drawn: False for a step that never started (no segments).
        segments: The attempts and waits, in time order.
    """

    step: StepState
    left: float
    width: float
    duration: str
    drawn: bool
    segments: tuple[Segment, ...] = ()


def span_of(run: WorkflowRun, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The run's time span: creation to its end, or (active) to ``now``.

    Only times the run recorded bound it from below: the server's clock may
    lag the engine's (a skewed worker), so ``now`` earlier than the run's own
    last stamp is ignored.
    """
    stamps = [run.updated_at, run.ended_at or run.updated_at]
    for s in run.steps:
        stamps.extend(t for t in (s.started_at, s.ended_at) if t is not None)
    end = max(stamps)
    if run.ended_at is not None and run.is_terminal:
        end = run.ended_at if run.ended_at >= end else end
    elif now is not None and now > end:
        end = now
    return run.created_at, end


class _Scale:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.end = end
        self.seconds = max((end - start).total_seconds(), 0.001)

    def pct(self, at: datetime) -> float:
        return min(max((at - self.start).total_seconds() / self.seconds * 100, 0.0), 100.0)

    def place(self, a: datetime, b: datetime) -> tuple[float, float]:
        left = self.pct(a)
        width = max(self.pct(b) - left, MIN_WIDTH)
        return round(min(left, 100.0 - width), 3), round(width, 3)


def _error_text(step: StepState) -> str:
    if step.error is None:
        return ""
    return f"{step.error.code}: {step.error.message}"


def _wait_detail(
    step: StepState, attempt: int, at: Callable[[datetime], str]
) -> tuple[SegmentKind, str, str]:
    wait = step.wait
    assert wait is not None
    if wait.kind == "retry":
        due = f" due {at(wait.until)}" if wait.until is not None else " due"
        return "retry", "retry wait", f"attempt {attempt + 1}{due}"
    times_out = f", times out {at(wait.until)}" if wait.until is not None else ""
    if wait.kind == "timer":
        until = f" until {at(wait.until)}" if wait.until is not None else ""
        return "wait", "sleep", f"sleeping{until}"
    if wait.kind == "event":
        return "wait", "waiting for event", f"for event {wait.event!r}{times_out}"
    reason = f": {wait.reason}" if wait.reason else ""
    return "wait", "waiting", f"for a person{reason}{times_out}"


def _floor(run: WorkflowRun, idx: int, started: datetime) -> datetime:
    """The earliest this step's first attempt can have begun: the previous step's end."""
    ends = [p.ended_at for p in run.steps[:idx] if p.ended_at is not None and p.ended_at <= started]
    return max([run.created_at, *ends])


def _clock(day: datetime) -> Callable[[datetime], str]:
    """Times of day with milliseconds; the date too when it is not the run's first day."""
    first = day.astimezone(UTC).date()

    def at(value: datetime) -> str:
        value = value.astimezone(UTC)
        text = value.strftime("%H:%M:%S.%f")[:-3]
        return text if value.date() == first else f"{value:%Y-%m-%d} {text}"

    return at


def _segments(run: WorkflowRun, idx: int, scale: _Scale) -> list[Segment]:
    s = run.steps[idx]
    started = s.started_at
    assert started is not None
    end = scale.end
    at = _clock(run.created_at)
    out: list[Segment] = []

    def add(
        kind: SegmentKind,
        outcome: str,
        a: datetime,
        b: datetime,
        label: str,
        detail: str,
        open_end: bool = False,
        exact: bool = True,
    ) -> None:
        b = max(a, b)
        left, width = scale.place(a, b)
        seconds = (b - a).total_seconds()
        out.append(Segment(kind, outcome, left, width, label, detail, seconds, open_end, exact))

    executing = s.status in (StepStatus.RUNNING, StepStatus.PENDING)
    # A running step's attempt is not committed yet: it is the one after the stored count.
    current = s.attempts + 1 if executing else max(s.attempts, 1)
    if current > 1:
        floor = _floor(run, idx, started)
        many = current > 2
        label = f"attempts 1–{current - 1} + retry waits" if many else "attempt 1 + retry wait"
        add(
            "earlier",
            "failed",
            floor,
            started,
            label,
            f"failed, between the previous step's end ({at(floor)}) and attempt {current}'s "
            f"start ({at(started)}); {'their' if many else 'its'} own times and error "
            "are not stored",
        )
    stopped = run.ended_at if run.is_terminal and run.ended_at is not None else None
    name = f"attempt {current}"
    error = f": {_error_text(s)}" if s.error is not None else ""
    if s.status == StepStatus.SKIPPED:
        add("attempt", "skipped", started, s.ended_at or started, "skipped", "skip_if was true")
    elif s.status in (StepStatus.DONE, StepStatus.FAILED) and s.ended_at is not None:
        outcome = s.status.value
        shown = error if s.status == StepStatus.FAILED else ""
        add(
            "attempt",
            outcome,
            started,
            s.ended_at,
            name,
            f"{at(started)} → {at(s.ended_at)}, {outcome}{shown}",
        )
    elif executing:
        if s.status == StepStatus.PENDING:
            outcome, what = "queued", "claimed, then released before it committed"
        else:
            outcome, what = "running", "running"
        if stopped is not None:
            outcome, what = "cancelled", f"{what} when the run ended {run.status.value}"
        detail = f"since {at(started)}, {what}"
        add("attempt", outcome, started, stopped or end, name, detail, open_end=stopped is None)
    elif s.status == StepStatus.WAITING and s.wait is not None:
        kind, label, detail = _wait_detail(s, current, at)
        how = f"failed{error}" if kind == "retry" else "suspended"
        attempt_outcome = "failed" if kind == "retry" else "waiting"
        if stopped is None:
            # The suspending write is the run's last one unless something wrote
            # since (a pause, a mailbox event): so the attempt ended by updated_at.
            suspended = min(max(run.updated_at, started), end)
            ran = f"from {at(started)}, {how} by {at(suspended)} (the exact end is not stored)"
            add("attempt", attempt_outcome, started, suspended, name, ran)
            add(kind, "waiting", suspended, end, label, detail, open_end=True)
        else:
            # The run's last write ended it: when the attempt suspended is not known.
            ran = f"from {at(started)}, {how} before {at(stopped)} (when is not stored)"
            add("attempt", attempt_outcome, started, started, name, ran, exact=False)
            detail += f"; the run ended {run.status.value} at {at(stopped)}"
            add(kind, "cancelled", started, stopped, label, detail)
    else:  # a record the engine does not write (waiting without a wait): draw what it says
        finish = s.ended_at or stopped or end
        add("attempt", s.status.value, started, finish, name, f"{at(started)}, {s.status.value}")
    return out


def timeline(run: WorkflowRun, now: datetime | None = None) -> list[Bar]:
    """A bar per step on the run's span (see :func:`span_of`), each cut into segments."""
    scale = _Scale(*span_of(run, now))
    bars = []
    for idx, s in enumerate(run.steps):
        if s.started_at is None:
            bars.append(Bar(s, 0.0, 0.0, "", False))
            continue
        segments = _segments(run, idx, scale)
        left = segments[0].left
        right = max(g.left + g.width for g in segments)
        seconds = sum(g.seconds for g in segments)
        bars.append(
            Bar(s, left, round(right - left, 3), duration_text(seconds), True, tuple(segments))
        )
    return bars
