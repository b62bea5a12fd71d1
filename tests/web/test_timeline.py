"""The run page's step timeline: attempts, waits and what the run document does not store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from streamline_core import RunStatus, StepContext, StepState, StepStatus, WorkflowRun
from streamline_core.run import RunError, WaitState
from streamline_testing import FakeClock
from streamline_web import create_app
from streamline_web.timeline import axis_text, span_of, timeline
from tests.web.support import XSS, client, make_engine, settle

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _run(*steps: StepState, status: RunStatus = RunStatus.DONE, end: float = 100) -> WorkflowRun:
    terminal = status in (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED)
    return WorkflowRun(
        id="r",
        workflow_id="w",
        status=status,
        created_at=T0,
        updated_at=at(end),
        ended_at=at(end) if terminal else None,
        steps=list(steps),
    )


def _done(step_id: str, start: float, end: float, attempts: int = 1) -> StepState:
    return StepState(
        step_id=step_id,
        status=StepStatus.DONE,
        attempts=attempts,
        started_at=at(start),
        ended_at=at(end),
    )


def test_a_retried_step_shows_its_last_attempt_and_the_earlier_ones_as_one_segment() -> None:
    run = _run(_done("a", 0, 20), _done("b", 60, 100, attempts=3))
    _, b = timeline(run)
    earlier, last = b.segments
    # Attempts 1-2 and their retry waits: from a's end to the last attempt's start.
    assert (earlier.kind, earlier.label) == ("earlier", "attempts 1–2 + retry waits")
    assert (earlier.left, earlier.width, earlier.seconds) == (20.0, 40.0, 40.0)
    assert "not stored" in earlier.detail
    assert (last.kind, last.outcome, last.label) == ("attempt", "done", "attempt 3")
    assert (last.left, last.width, last.seconds) == (60.0, 40.0, 40.0)
    assert last.detail == "00:01:00.000 → 00:01:40.000, done"
    assert (b.left, b.width, b.duration) == (20.0, 80.0, "1 m 20 s")


def test_a_failed_step_says_its_error() -> None:
    failed = StepState(
        step_id="a",
        status=StepStatus.FAILED,
        attempts=1,
        started_at=T0,
        ended_at=at(10),
        error=RunError(code="STEP_FAILED", message="boom"),
    )
    (bar,) = timeline(_run(failed, status=RunStatus.FAILED, end=10))
    (attempt,) = bar.segments
    assert attempt.outcome == "failed" and attempt.detail.endswith("failed: STEP_FAILED: boom")


def test_a_step_in_its_retry_wait_shows_the_failed_attempt_then_the_wait_until_now() -> None:
    waiting = StepState(
        step_id="a",
        status=StepStatus.WAITING,
        attempts=2,
        started_at=at(30),
        error=RunError(code="STEP_FAILED", message="reset"),
        wait=WaitState(kind="retry", reason="reset", until=at(200)),
    )
    run = _run(waiting, status=RunStatus.WAITING, end=40)  # the retry was written at 40
    (bar,) = timeline(run, now=at(80))
    earlier, attempt, retry = bar.segments
    assert earlier.label == "attempt 1 + retry wait" and earlier.seconds == 30
    assert (attempt.outcome, attempt.seconds) == ("failed", 10)
    assert "failed: STEP_FAILED: reset by 00:00:40.000" in attempt.detail
    assert (retry.kind, retry.seconds, retry.open_end) == ("retry", 40, True)
    assert retry.detail == "attempt 3 due 00:03:20.000"
    assert retry.left + retry.width == 100.0  # the span reaches now


def test_a_run_cancelled_while_waiting_does_not_guess_when_the_attempt_suspended() -> None:
    waiting = StepState(
        step_id="a",
        status=StepStatus.WAITING,
        attempts=1,
        started_at=at(10),
        wait=WaitState(kind="human", reason="approve it"),
    )
    (bar,) = timeline(_run(waiting, status=RunStatus.CANCELLED, end=50))
    attempt, wait = bar.segments
    assert not attempt.exact and attempt.duration == "?" and "not stored" in attempt.detail
    assert (wait.kind, wait.outcome, wait.seconds, wait.open_end) == (
        "wait",
        "cancelled",
        40,
        False,
    )
    assert "for a person: approve it" in wait.detail and "ended cancelled" in wait.detail


def test_a_running_step_runs_to_now_and_a_lagging_clock_is_ignored() -> None:
    running = StepState(step_id="a", status=StepStatus.RUNNING, attempts=0, started_at=at(5))
    run = _run(running, status=RunStatus.RUNNING, end=5)
    assert span_of(run, now=at(25)) == (T0, at(25))
    assert span_of(run, now=at(1)) == (T0, at(5))  # the server's clock is behind the run's
    (bar,) = timeline(run, now=at(25))
    (attempt,) = bar.segments
    assert (attempt.label, attempt.outcome, attempt.open_end) == ("attempt 1", "running", True)
    assert (attempt.left, attempt.width) == (20.0, 80.0)


def test_an_instant_step_is_still_visible_and_segments_stay_inside_the_track() -> None:
    run = _run(_done("a", 0, 0), _done("b", 100, 100))
    a, b = timeline(run)
    assert a.width >= 0.8 and b.width >= 0.8
    assert b.left + b.width <= 100.0


def test_axis_labels() -> None:
    assert [axis_text(s) for s in (0.1375, 2.5, 8.0, 75)] == ["0.138 s", "2.5 s", "8 s", "1 m 15 s"]


async def test_the_run_page_draws_attempts_and_retry_waits_with_their_errors() -> None:
    clock = FakeClock()
    engine = make_engine(clock=clock)
    flaky = engine.workflow("flaky")

    @flaky.step(retries=3, retry_delay=5)
    async def call(ctx: StepContext) -> Any:
        raise ConnectionError(XSS)

    async with engine:
        run = await flaky.start()
        await settle(engine)
        # Attempt 2 (due after the jittered retry delay) fails too: the run then
        # waits for attempt 3.
        for _ in range(60):
            await clock.advance(1)
            await settle(engine)
            now = await engine.runs.get(run.id)
            if now is not None and now.steps[0].attempts >= 2 and now.wait is not None:
                break
        async with client(create_app(engine)) as http:
            html = (await http.get(f"/runs/{run.id}")).text
    assert 'data-kind="earlier"' in html and 'data-kind="retry"' in html
    assert "attempt 3 due" in html
    assert "<script>alert" not in html
    assert "failed: STEP_FAILED: &lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt; by" in html
