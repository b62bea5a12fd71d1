"""Failures: retries with backoff, timeouts, non-retriable errors, the retry hook."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from streamline_core import (
    GIVE_UP,
    Engine,
    ErrorCode,
    NonRetriableError,
    Retry,
    RunStatus,
    StepConfig,
    StepContext,
    StepDefaults,
    StepStatus,
    ValidationError,
    hookimpl,
)
from streamline_core.retry import backoff_delay
from tests.conftest import Env


def test_backoff_math_matches_the_documented_defaults() -> None:
    no_jitter = {"jitter": 0.0}
    assert [backoff_delay(a, 1.0, "exponential", **no_jitter) for a in (1, 2, 3, 7, 8)] == [
        1.0,
        2.0,
        4.0,
        60.0,
        60.0,
    ]
    assert [backoff_delay(a, 2.0, "linear", **no_jitter) for a in (1, 2, 3)] == [2.0, 4.0, 6.0]
    assert [backoff_delay(a, 5.0, "fixed", **no_jitter) for a in (1, 4)] == [5.0, 5.0]
    assert backoff_delay(3, 1.0, 3.0, **no_jitter) == 9.0
    rng = random.Random(7)
    samples = [backoff_delay(2, 1.0, "exponential", rand=rng) for _ in range(500)]
    assert min(samples) >= 2.0 * 0.7
    assert max(samples) <= 2.0 * 1.3
    assert max(samples) - min(samples) > 0.5  # jitter actually spreads


async def test_a_flaky_step_is_retried_durably_then_succeeds(env: Env) -> None:
    calls = 0

    async def flaky(ctx: StepContext) -> str:
        nonlocal calls
        calls += 1
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return "ok"

    async with env.engine() as engine:
        wf = engine.workflow("flaky", steps={"flaky": StepConfig(flaky, retries=3, retry_delay=10)})
        run = await wf.start()
        await env.settle()
        backing_off = await wf.get(run.id)
        assert backing_off is not None
        assert backing_off.status == RunStatus.WAITING
        assert backing_off.wait is not None
        assert backing_off.wait.kind == "retry"
        assert backing_off.next_run_at is not None
        assert backing_off.lease is None
        assert backing_off.steps[0].attempts == 1
        assert backing_off.steps[0].error is not None
        assert "attempt 1 failed" in backing_off.steps[0].error.message
        for _ in range(6):
            await env.clock.advance(15)
            await env.settle()
        done = await wf.wait_for(run.id, timeout=10)
    assert calls == 3
    assert done.status == RunStatus.DONE
    assert done.steps[0].attempts == 3
    assert done.steps[0].error is None


async def test_exhausted_retries_fail_the_run_with_max_retries_exceeded(env: Env) -> None:
    calls = 0

    async def broken(ctx: StepContext) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("always")

    failed: list[Any] = []
    async with env.engine() as engine:
        engine.on("workflow:failed")(failed.append)
        wf = engine.workflow(
            "broken", steps={"broken": StepConfig(broken, retries=2, retry_delay=1)}
        )
        run = await wf.start()
        for _ in range(5):
            await env.clock.advance(2)
            await env.settle()
        done = await wf.wait_for(run.id, timeout=10)
    assert calls == 2
    assert done.status == RunStatus.FAILED
    assert done.error is not None
    assert done.error.code == ErrorCode.MAX_RETRIES_EXCEEDED
    assert done.error.step_id == "broken"
    assert done.steps[0].status == StepStatus.FAILED
    assert done.steps[0].attempts == 2
    assert [e.run_id for e in failed] == [run.id]


async def test_non_retriable_error_fails_at_once(env: Env) -> None:
    calls = 0

    async def card(ctx: StepContext) -> None:
        nonlocal calls
        calls += 1
        raise NonRetriableError("card declined")

    async with env.engine() as engine:
        wf = engine.workflow("card", steps={"card": StepConfig(card, retries=5)})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert calls == 1
    assert done.error is not None
    assert done.error.code == ErrorCode.STEP_FAILED
    assert done.error.message == "card declined"


async def test_a_timeout_cancels_the_handler_and_counts_as_an_attempt(env: Env) -> None:
    cancelled = 0

    async def slow(ctx: StepContext) -> None:
        nonlocal cancelled
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled += 1
            raise

    async with env.engine() as engine:
        wf = engine.workflow("slow", steps={"slow": StepConfig(slow, retries=1, timeout=5)})
        run = await wf.start()
        await env.settle()
        await env.clock.advance(5)
        done = await wf.wait_for(run.id, timeout=10)
    assert cancelled == 1
    assert done.status == RunStatus.FAILED
    assert done.steps[0].error is not None
    assert done.steps[0].error.code == ErrorCode.STEP_TIMEOUT
    assert done.error is not None
    assert done.error.code == ErrorCode.MAX_RETRIES_EXCEEDED


async def test_a_retry_plugin_can_give_up_for_one_error_type_only(env: Env) -> None:
    class NoRetryOnValueError:
        @hookimpl
        def streamline_retry_delay(
            self, run: Any, step: Any, config: Any, attempt: int, error: BaseException
        ) -> Any:
            if isinstance(error, ValueError):
                return GIVE_UP
            return None

    calls: dict[str, int] = {"value": 0, "runtime": 0}

    async def value(ctx: StepContext) -> None:
        calls["value"] += 1
        raise ValueError("bad value")

    async def runtime(ctx: StepContext) -> None:
        calls["runtime"] += 1
        raise RuntimeError("transient")

    async with env.engine(plugins=[NoRetryOnValueError()]) as engine:
        wf = engine.workflow(
            "plug",
            steps={
                "value": StepConfig(value, retries=3, retry_delay=1),
            },
        )
        wf2 = engine.workflow(
            "plug2", steps={"runtime": StepConfig(runtime, retries=3, retry_delay=1)}
        )
        r1 = await wf.start()
        r2 = await wf2.start()
        for _ in range(10):
            await env.clock.advance(3)
            await env.settle()
        d1 = await wf.wait_for(r1.id, timeout=10)
        d2 = await wf2.wait_for(r2.id, timeout=10)
    assert calls == {"value": 1, "runtime": 3}
    assert d1.error is not None
    assert d1.error.code == ErrorCode.STEP_FAILED
    assert d2.error is not None
    assert d2.error.code == ErrorCode.MAX_RETRIES_EXCEEDED


async def test_a_retry_plugin_sets_the_delay(env: Env) -> None:
    class Fixed:
        @hookimpl
        def streamline_retry_delay(
            self, run: Any, step: Any, config: Any, attempt: int, error: BaseException
        ) -> float:
            return 100.0

    async def once(ctx: StepContext) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("first")
        return "second"

    async with env.engine(plugins=[Fixed()]) as engine:
        wf = engine.workflow("delay", steps={"once": once})
        run = await wf.start()
        await env.settle()
        waiting = await wf.get(run.id)
        assert waiting is not None
        assert waiting.next_run_at is not None
        assert (waiting.next_run_at - env.clock.now()).total_seconds() == 100.0
        await env.clock.advance(100)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.output == "second"


async def _retry_delays(env: Env, config: Any, failures: int) -> tuple[list[float], Any]:
    """Fail the first ``failures`` attempts; the delays the run was rescheduled by, and the end."""
    calls: list[int] = []

    async def flaky(ctx: StepContext) -> str:
        calls.append(ctx.attempt)
        if ctx.attempt <= failures:
            raise RuntimeError(f"attempt {ctx.attempt}")
        return "ok"

    delays: list[float] = []
    async with env.engine() as engine:
        engine.on("step:retry-scheduled")(lambda e: delays.append(e.data["delay"]))
        wf = engine.workflow("flaky", steps={"flaky": {"handler": flaky, **config}})
        run = await wf.start()
        for _ in range(20):
            await env.clock.advance(60)
        done = await wf.wait_for(run.id, timeout=10)
    return delays, done


async def test_a_retry_policy_value_sets_attempts_delay_backoff_and_cap(env: Env) -> None:
    retry = Retry(attempts=4, delay=10, backoff="exponential", max_delay=15, jitter=0)
    delays, done = await _retry_delays(env, {"retry": retry}, failures=3)
    assert delays == [10.0, 15.0, 15.0]
    assert done.status == RunStatus.DONE
    assert done.steps[0].attempts == 4


async def test_a_retry_policy_gives_up_after_its_attempts(env: Env) -> None:
    delays, done = await _retry_delays(env, {"retry": Retry(attempts=2, delay=1, jitter=0)}, 5)
    assert delays == [1.0]
    assert done.status == RunStatus.FAILED
    assert done.error is not None and done.error.code == ErrorCode.MAX_RETRIES_EXCEEDED.value


async def test_non_retryable_exception_types_fail_at_once(env: Env) -> None:
    calls: list[int] = []

    async def parse(ctx: StepContext) -> None:
        calls.append(ctx.attempt)
        raise ValueError("not a number")

    async with env.engine() as engine:
        wf = engine.workflow(
            "parse",
            steps={
                "parse": StepConfig(parse, retry=Retry(attempts=5, non_retryable=(ValueError,)))
            },
        )
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    assert calls == [1]
    assert done.error is not None and done.error.code == ErrorCode.STEP_FAILED.value


async def test_step_defaults_can_carry_the_retry_policy(env: Env) -> None:
    engine = env.engine()
    wf = engine.workflow(
        "d",
        steps={"a": lambda ctx: 1, "b": StepConfig(lambda ctx: 2, retries=5)},
        defaults=StepDefaults(retry=Retry(attempts=2, delay=3, max_delay=4, jitter=0.1)),
    )
    a, b = wf.steps
    assert (a.retries, a.retry_delay, a.max_retry_delay, a.retry_jitter) == (2, 3.0, 4.0, 0.1)
    assert (b.retries, b.retry_delay) == (5, 3.0)  # its own retries win, the rest inherit


@pytest.mark.parametrize(
    "config",
    [
        StepConfig(lambda ctx: 1, retries=2, retry=Retry(attempts=3)),
        StepConfig(lambda ctx: 1, retry=Retry(non_retryable=(int,))),  # type: ignore[arg-type]
        StepConfig(lambda ctx: 1, retry=Retry(jitter=1.5)),
        StepConfig(lambda ctx: 1, retry=Retry(max_delay=-1)),
        StepConfig(lambda ctx: 1, retry=Retry(attempts=0)),
        StepConfig(lambda ctx: 1, retry=3),  # type: ignore[arg-type]
    ],
    ids=["mixed", "not an exception", "jitter", "max_delay", "attempts", "not a Retry"],
)
def test_invalid_retry_policies_are_refused(config: StepConfig) -> None:
    engine = Engine("memory://", load_entry_point_plugins=False)
    with pytest.raises(ValidationError):
        engine.workflow("bad", steps={"a": config})
