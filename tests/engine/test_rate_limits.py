"""RateLimit(limit, period, key): at most ``limit`` runs of a key begin per window; none dropped."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from streamline_core import (
    Concurrency,
    ErrorCode,
    RateLimit,
    RunStatus,
    StepContext,
    ValidationError,
)
from tests.conftest import Env


def by_k(value: Any) -> str:
    return str(value["k"])


async def test_at_most_limit_runs_begin_per_period_and_the_rest_are_delayed(env: Env) -> None:
    began: list[tuple[float, str]] = []
    t0 = env.clock.now()

    async def step(ctx: StepContext) -> None:
        began.append(((env.clock.now() - t0).total_seconds(), ctx.input["k"]))

    engine = env.engine()
    wf = engine.workflow("api", steps={"call": step}, rate_limit=RateLimit(2, 60, key=by_k))
    await engine.start()
    runs = [await wf.start({"k": "a"}) for _ in range(5)] + [await wf.start({"k": "b"})]
    for _ in range(4):
        await env.clock.advance(1)
        await env.settle()
    assert sorted(k for _, k in began) == ["a", "a", "b"]
    for _ in range(30):
        await env.clock.advance(5)
        await env.settle()
    assert len(began) == 6  # delayed, never dropped
    times = sorted(t for t, k in began if k == "a")
    for t in times:  # any 60 s window holds at most 2 begins of "a"
        assert sum(1 for u in times if t - 60 < u <= t) <= 2, times
    assert times[2] >= 60
    done = [await wf.get(r.id) for r in runs]
    assert all(r is not None and r.status == RunStatus.DONE for r in done)
    assert all(r is not None and r.began_at is not None for r in done)


async def test_a_run_that_began_is_not_rate_limited_again(env: Env) -> None:
    calls: list[str] = []

    async def first(ctx: StepContext) -> None:
        calls.append("first")
        await ctx.sleep(1)

    async def second(ctx: StepContext) -> None:
        calls.append("second")

    engine = env.engine()
    wf = engine.workflow(
        "slow",
        steps={"first": first, "second": second},
        rate_limit=RateLimit(1, timedelta(hours=1)),
    )
    await engine.start()
    run = await wf.start()
    for _ in range(5):
        await env.clock.advance(1)
        await env.settle()
    assert calls == ["first", "second"]
    assert (await wf.get(run.id)).status == RunStatus.DONE  # type: ignore[union-attr]


async def test_rate_limit_and_concurrency_together(env: Env) -> None:
    async def step(ctx: StepContext) -> None:
        return None

    engine = env.engine()
    wf = engine.workflow(
        "both",
        steps={"a": step},
        concurrency=Concurrency(1),
        rate_limit=RateLimit(3, 10),
    )
    await engine.start()
    for _ in range(4):
        await wf.start()
    for _ in range(3):
        await env.clock.advance(1)
        await env.settle()
    assert await engine.runs.count(status="done") == 3
    for _ in range(12):
        await env.clock.advance(1)
        await env.settle()
    assert await engine.runs.count(status="done") == 4


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RateLimit(0, 60), "limit"),
        (lambda: RateLimit(1.5, 60), "limit"),  # type: ignore[arg-type]
        (lambda: RateLimit(1, 0), "period"),
        (lambda: RateLimit(1, -5), "period"),
        (lambda: RateLimit(1, float("nan")), "period"),
        (lambda: RateLimit(1, "60"), "period"),  # type: ignore[arg-type]
        (lambda: RateLimit(1, 60, key=42), "callable"),  # type: ignore[arg-type]
    ],
)
def test_bad_rate_limit_options_are_validation_errors(build: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        build()
    assert info.value.code == ErrorCode.VALIDATION_ERROR


async def test_a_key_that_raises_fails_start_and_stores_nothing(env: Env) -> None:
    engine = env.engine()
    wf = engine.workflow(
        "raising", steps={"a": lambda ctx: None}, rate_limit=RateLimit(1, 1, key=lambda i: i["x"])
    )
    with pytest.raises(ValidationError, match="key failed"):
        await wf.start({})
    assert await engine.runs.count() == 0


async def test_a_non_limit_value_for_the_options_is_a_validation_error(env: Env) -> None:
    engine = env.engine()
    with pytest.raises(ValidationError, match="rate_limit must be a RateLimit"):
        engine.workflow("x", steps={"a": lambda ctx: None}, rate_limit=10)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="concurrency must be a Concurrency"):
        engine.workflow("y", steps={"a": lambda ctx: None}, concurrency=2)  # type: ignore[arg-type]
