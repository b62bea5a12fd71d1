"""A failure says where it happened: tracebacks on the step, in the log, and hints on timeouts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streamline_core import Engine, RunStatus, StepConfig, StepContext, ValidationError
from streamline_testing import FakeClock
from tests.conftest import Env


def lookup_price(order: dict[str, int]) -> int:
    return order["missing"]


async def price(ctx: StepContext) -> int:
    return lookup_price({"present": 1})


async def test_a_failed_steps_error_keeps_its_traceback(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow("pricing", steps={"price": StepConfig(price, retries=1)})
        run = await wf.start()
        done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.FAILED
    error = done.steps[0].error
    assert error is not None and error.traceback is not None
    assert "KeyError: 'missing'" in error.traceback
    assert "lookup_price" in error.traceback  # the helper where it happened, not just the step
    stored = await env.engine().runs.get(run.id)
    assert stored is not None and stored.steps[0].error is not None
    assert stored.steps[0].error.traceback == error.traceback


async def test_a_huge_traceback_is_bounded(env: Env) -> None:
    async def deep(ctx: StepContext) -> None:
        def recurse(n: int) -> None:
            if n == 0:
                raise ValueError("x" * 20_000)
            recurse(n - 1)

        recurse(200)

    async with env.engine() as engine:
        wf = engine.workflow("deep", steps={"deep": StepConfig(deep, retries=1)})
        done = await wf.wait_for((await wf.start()).id, timeout=10)
    error = done.steps[0].error
    assert error is not None and error.traceback is not None
    assert len(error.traceback) < 8_200
    assert "characters left out" in error.traceback
    assert error.traceback.rstrip().endswith("x")  # the frames nearest the raise are kept


async def test_step_failures_are_logged_with_the_exception(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="streamline.run")
    async with env.engine() as engine:
        wf = engine.workflow(
            "pricing", steps={"price": StepConfig(price, retries=2, retry_delay=0.0)}
        )
        run = await wf.start()
        await env.clock.advance(1)
        done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.FAILED
    records = [r for r in caplog.records if r.name == "streamline.run"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.ERROR]
    assert all(r.exc_info is not None and r.exc_info[0] is KeyError for r in records)
    assert "will retry" in records[0].getMessage()
    assert "giving up" in records[1].getMessage()
    assert getattr(records[1], "run_id", None) == run.id


async def test_waiting_for_a_run_no_worker_claims_says_so(env: Env) -> None:
    client = env.engine()
    wf = client.workflow("orphan", steps={"a": lambda ctx: 1})
    run = await wf.start()
    with pytest.raises(TimeoutError) as err:
        await wf.wait_for(run.id, timeout=0.05, poll_interval=0.01)
    message = str(err.value)
    assert "no worker has claimed it" in message
    assert "client (not started)" in message


def test_a_path_is_taken_as_an_sqlite_database(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "runs.db", clock=FakeClock(), load_entry_point_plugins=False)
    assert engine.store_url == f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.mark.parametrize("store", [42, object(), b"sqlite:///x.db"])
def test_a_store_of_another_type_is_refused_at_construction(store: object) -> None:
    with pytest.raises(ValidationError, match="store must be"):
        Engine(store, load_entry_point_plugins=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "option",
    [{"lease": float("nan")}, {"lease": float("inf")}, {"min_poll_interval": float("nan")}],
)
def test_engine_durations_must_be_finite(option: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        Engine("memory://", load_entry_point_plugins=False, **option)  # type: ignore[arg-type]


@pytest.mark.parametrize("option", ["timeout", "retry_delay"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400])
def test_step_durations_must_be_finite(option: str, value: float) -> None:
    engine = Engine("memory://", load_entry_point_plugins=False)
    with pytest.raises(ValidationError, match="finite"):
        engine.workflow("w", steps={"a": {"handler": lambda ctx: 1, option: value}})
