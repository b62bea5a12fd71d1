"""Bad input gets a clear ValidationError and leaves nothing half-written."""

from __future__ import annotations

from typing import Any

import pytest

from streamline_core import Engine, ErrorCode, StepConfig, StepContext, ValidationError
from streamline_testing import FakeClock, InMemoryStore


def ok(ctx: StepContext) -> int:
    return 1


@pytest.fixture
def engine() -> Engine:
    return Engine(InMemoryStore(), clock=FakeClock(), load_entry_point_plugins=False)


@pytest.mark.parametrize(
    ("steps", "needle"),
    [
        ({}, "no steps"),
        ({"": ok}, "non-empty"),
        ({"x" * 101: ok}, "101 characters"),
        ({"a": 42}, "callable"),
        ({"a": StepConfig(ok, retries=0)}, "retries"),
        ({"a": StepConfig(ok, retries=21)}, "retries"),
        ({"a": {"handler": ok, "retries": 2.5}}, "retries"),
        ({"a": StepConfig(ok, timeout=-1)}, "timeout"),
        ({"a": {"handler": ok, "bogus": 1}}, "unknown option"),
        ({"a": {"retries": 2}}, "handler"),
        ({"a": StepConfig(ok, retry_backoff="sideways")}, "retry_backoff"),
    ],
)
def test_invalid_definitions_are_refused(
    engine: Engine, steps: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ValidationError) as err:
        engine.workflow("bad", steps=steps)
    assert err.value.code == ErrorCode.VALIDATION_ERROR
    assert needle in str(err.value)
    assert "bad" not in engine.workflow_names


def test_duplicate_step_ids_in_the_decorator_form(engine: Engine) -> None:
    wf = engine.workflow("dup")

    @wf.step
    async def a(ctx: StepContext) -> None: ...

    with pytest.raises(ValidationError, match="duplicate step id 'a'"):
        wf.step(name="a")(ok)


def test_a_different_definition_under_the_same_name_and_version(engine: Engine) -> None:
    first = engine.workflow("same", steps={"a": ok})
    assert engine.workflow("same", steps={"a": ok}) is first
    with pytest.raises(ValidationError, match="different definition"):
        engine.workflow("same", steps={"a": ok, "b": ok})
    assert engine.workflow("same", steps={"a": ok, "b": ok}, version="2") is not first


async def test_a_decorator_workflow_without_steps_cannot_start() -> None:
    store = InMemoryStore()
    engine = Engine(store, clock=FakeClock(), load_entry_point_plugins=False)
    wf = engine.workflow("empty")
    with pytest.raises(ValidationError, match="no steps"):
        await wf.start()
    assert len(store) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lease": 0},
        {"max_concurrent_runs": 0},
        {"max_recoveries": -1},
        {"min_poll_interval": 2, "max_poll_interval": 1},
    ],
)
def test_invalid_engine_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Engine(InMemoryStore(), **kwargs)


def test_unknown_store_scheme_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="no store for scheme 'nosuch'"):
        Engine("nosuch://x")
    with pytest.raises(ValidationError, match="no scheme"):
        Engine("just-a-path.db")


def test_memory_url_builds_an_in_memory_store() -> None:
    engine = Engine("memory://")
    assert isinstance(engine.store, InMemoryStore)


async def test_bad_start_options_create_nothing() -> None:
    store = InMemoryStore()
    engine = Engine(store, clock=FakeClock(), load_entry_point_plugins=False, tenant_id="t1")
    wf = engine.workflow("w", steps={"a": ok})
    from datetime import datetime

    for kwargs in (
        {"priority": "high"},
        {"idempotency_key": ""},
        {"start_at": datetime(2030, 1, 1)},
        {"tenant_id": "t2"},
    ):
        with pytest.raises(ValidationError):
            await wf.start(**kwargs)
    assert len(store) == 0


async def test_context_factory_errors_are_validation_errors() -> None:
    engine = Engine(InMemoryStore(), clock=FakeClock(), load_entry_point_plugins=False)
    wf = engine.workflow("c", steps={"a": ok}, context=lambda i: i["missing"])
    with pytest.raises(ValidationError, match="context factory failed"):
        await wf.start({})
    wf2 = engine.workflow("c2", steps={"a": ok}, context=lambda i: ["not", "a", "dict"])
    with pytest.raises(ValidationError, match="must return a dict"):
        await wf2.start({})
