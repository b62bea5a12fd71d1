"""Bad input at every public entry, on every store: a ValidationError naming it, nothing written.

Table-driven: each row is one call through the public API with one bad
argument. A run id must be a string (a query document such as
``{"$ne": None}`` would otherwise select an arbitrary run on a document
store), filter values are matched as values, never as operators, and a
value every store could not give back exactly is refused before it is
stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from streamline_core import (
    Engine,
    ErrorCode,
    RunStatus,
    StepContext,
    ValidationError,
    Workflow,
    WorkflowRun,
)
from tests.conftest import Env


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


DEEP = _deep(10_000)
SURROGATE = "\ud800"
BAD_RUN_IDS: list[Any] = [{"$ne": None}, {"$gt": ""}, ["x"], 5, None, "", SURROGATE, b"id"]

Call = Callable[[Engine, Workflow, Any], Awaitable[Any]]

RUN_ID_ENTRIES: dict[str, Call] = {
    "wf.get": lambda e, wf, bad: wf.get(bad),
    "wf.cancel": lambda e, wf, bad: wf.cancel(bad),
    "wf.resume": lambda e, wf, bad: wf.resume(bad, {"ok": True}),
    "wf.execute": lambda e, wf, bad: wf.execute(bad),
    "wf.pause": lambda e, wf, bad: wf.pause(bad),
    "wf.unpause": lambda e, wf, bad: wf.unpause(bad),
    "wf.rewind_to": lambda e, wf, bad: wf.rewind_to(bad, "ask"),
    "wf.wait_for": lambda e, wf, bad: wf.wait_for(bad, timeout=0.1),
    "runs.get": lambda e, wf, bad: e.runs.get(bad),
    "runs.cancel": lambda e, wf, bad: e.runs.cancel(bad),
    "runs.resume": lambda e, wf, bad: e.runs.resume(bad),
    "emit_event(run_id=)": lambda e, wf, bad: e.emit_event("go", {}, run_id=bad),
}


async def ask(ctx: StepContext) -> None:
    await ctx.wait("approve?")


async def _victim(env: Env) -> tuple[Engine, Workflow, WorkflowRun]:
    """A client engine and one run waiting for a person: what a bad call must not touch."""
    engine = env.engine()
    wf = engine.workflow("victim", steps={"ask": ask, "done": lambda ctx: "ok"})
    worker = env.engine()
    worker.workflow("victim", steps={"ask": ask, "done": lambda ctx: "ok"})
    run = await wf.start(meta={"user": "alice"}, idempotency_key="k1")
    await worker.start()
    # Another engine runs it: this client re-reads it (a real-time poll) until it waits.
    waiting = await wf.wait_for(run.id, timeout=10, suspended=True, poll_interval=0.01)
    await worker.shutdown()
    assert waiting.status == RunStatus.WAITING
    return engine, wf, waiting


@pytest.mark.parametrize("entry", sorted(RUN_ID_ENTRIES))
async def test_a_run_id_that_is_not_a_string_is_refused_and_changes_nothing(
    env: Env, entry: str
) -> None:
    engine, wf, victim = await _victim(env)
    for bad in BAD_RUN_IDS:
        if bad is None and entry.startswith("emit_event"):
            continue  # no run id: a broadcast
        with pytest.raises(ValidationError) as err:
            await RUN_ID_ENTRIES[entry](engine, wf, bad)
        assert err.value.code == ErrorCode.VALIDATION_ERROR
        assert "run_id" in str(err.value)
    after = await wf.get(victim.id)
    assert after is not None
    assert (after.status, after.revision) == (victim.status, victim.revision)


@pytest.mark.parametrize(
    "operator",
    [
        {"$ne": "x"},
        {"$gt": ""},
        {"$regex": ".*"},
        {"$in": ["alice", "bob"]},
        {"$exists": True},
        {"$nin": []},
    ],
    ids=lambda op: next(iter(op)),
)
async def test_filter_values_are_matched_as_values_never_as_operators(
    env: Env, operator: dict[str, Any]
) -> None:
    engine, _, victim = await _victim(env)
    assert await engine.runs.count(meta={"user": "alice"}) == 1
    assert (await engine.runs.find(meta={"user": operator})).items == []
    assert await engine.runs.count(meta={"user": operator}) == 0
    assert (await engine.runs.find(context={"user": operator})).items == []
    assert await engine.runs.count(context={"missing": operator}) == 0
    assert victim.id in [r.id for r in (await engine.runs.find()).items]


Start = Callable[[Workflow], Awaitable[Any]]
NOW = datetime(2030, 1, 1, tzinfo=UTC)

BAD_STARTS: dict[str, tuple[Start, str]] = {
    "tenant_id=5": (lambda wf: wf.start(tenant_id=5), "tenant_id"),  # type: ignore[arg-type]
    "tenant_id=surrogate": (lambda wf: wf.start(tenant_id=SURROGATE), "tenant_id"),
    "start_at=str": (lambda wf: wf.start(start_at="tomorrow"), "start_at"),  # type: ignore[arg-type]
    "start_at=naive": (lambda wf: wf.start(start_at=datetime(2030, 1, 2)), "start_at"),
    "priority=10**30": (lambda wf: wf.start(priority=10**30), "priority"),
    "priority=str": (lambda wf: wf.start(priority="1"), "priority"),  # type: ignore[arg-type]
    "priority=bool": (lambda wf: wf.start(priority=True), "priority"),
    "idempotency_key=5": (lambda wf: wf.start(idempotency_key=5), "idempotency_key"),  # type: ignore[arg-type]
    "idempotency_key=surrogate": (
        lambda wf: wf.start(idempotency_key=SURROGATE),
        "idempotency_key",
    ),
    "meta=list": (lambda wf: wf.start(meta=[1, 2]), "meta"),  # type: ignore[arg-type]
    "meta=deep": (lambda wf: wf.start(meta={"a": DEEP}), "meta"),
    "meta=surrogate": (lambda wf: wf.start(meta={"a": SURROGATE}), "meta"),
    "input=deep": (lambda wf: wf.start(DEEP), "input"),
    "input=surrogate": (lambda wf: wf.start({"name": SURROGATE}), "input"),
    "input=big int": (lambda wf: wf.start({"n": 10**5000}), "input"),
    "input=2**63": (lambda wf: wf.start({"n": 2**63}), "input"),
}


@pytest.mark.parametrize("case", sorted(BAD_STARTS))
async def test_start_with_a_bad_argument_is_refused_and_stores_nothing(env: Env, case: str) -> None:
    call, needle = BAD_STARTS[case]
    engine = env.engine()
    wf = engine.workflow("w", steps={"a": lambda ctx: 1})
    with pytest.raises(ValidationError) as err:
        await call(wf)
    assert needle in str(err.value)
    assert await engine.runs.count() == 0


OtherCall = Callable[[Engine, Workflow, WorkflowRun], Awaitable[Any]]

BAD_OTHERS: dict[str, tuple[OtherCall, str]] = {
    "resume(payload=deep)": (lambda e, wf, r: wf.resume(r.id, DEEP), "payload"),
    "resume(payload=surrogate)": (lambda e, wf, r: wf.resume(r.id, SURROGATE), "payload"),
    "emit_event(data=deep)": (lambda e, wf, r: e.emit_event("go", DEEP), "event data"),
    "emit_event(name=surrogate)": (lambda e, wf, r: e.emit_event(SURROGATE), "event name"),
    "emit_event(name=5)": (lambda e, wf, r: e.emit_event(5), "event name"),  # type: ignore[arg-type]
    "find(limit='5')": (lambda e, wf, r: e.runs.find(limit="5"), "limit"),  # type: ignore[arg-type]
    "find(limit=0)": (lambda e, wf, r: e.runs.find(limit=0), "limit"),
    "find(status=5)": (lambda e, wf, r: e.runs.find(status=5), "status"),  # type: ignore[arg-type]
    "find(status='nope')": (lambda e, wf, r: e.runs.find(status="nope"), "status"),
    "find(created_after='x')": (
        lambda e, wf, r: e.runs.find(created_after="x"),  # type: ignore[arg-type]
        "created_after",
    ),
    "find(meta=list)": (lambda e, wf, r: e.runs.find(meta=[("a", 1)]), "meta"),  # type: ignore[arg-type]
    "find(workflow_id=5)": (lambda e, wf, r: e.runs.find(workflow_id=5), "workflow_id"),  # type: ignore[arg-type]
    "find(tenant_id=5)": (lambda e, wf, r: e.runs.find(tenant_id=5), "tenant_id"),  # type: ignore[arg-type]
    "find(cursor=5)": (lambda e, wf, r: e.runs.find(cursor=5), "cursor"),  # type: ignore[arg-type]
    "count(context=deep)": (lambda e, wf, r: e.runs.count(context={"a": DEEP}), "context"),
    "delete(updated_before='x')": (
        lambda e, wf, r: e.runs.delete(status="done", updated_before="x"),  # type: ignore[arg-type]
        "updated_before",
    ),
    "delete(status=[])": (lambda e, wf, r: e.runs.delete(status=[], updated_before=NOW), "status"),
    "delete(status='running')": (
        lambda e, wf, r: e.runs.delete(status="running", updated_before=NOW),
        "finished",
    ),
    "rewind_to(step_id=5)": (lambda e, wf, r: wf.rewind_to(r.id, 5), "step_id"),  # type: ignore[arg-type]
    "wait_for(timeout='1')": (
        lambda e, wf, r: wf.wait_for(r.id, timeout="1"),  # type: ignore[arg-type]
        "timeout",
    ),
    "wait_for(timeout=nan)": (lambda e, wf, r: wf.wait_for(r.id, timeout=float("nan")), "timeout"),
}


@pytest.mark.parametrize("case", sorted(BAD_OTHERS))
async def test_other_entries_with_a_bad_argument_are_refused_and_change_nothing(
    env: Env, case: str
) -> None:
    call, needle = BAD_OTHERS[case]
    engine, wf, victim = await _victim(env)
    with pytest.raises(ValidationError) as err:
        await call(engine, wf, victim)
    assert needle in str(err.value)
    after = await wf.get(victim.id)
    assert after is not None
    assert (after.status, after.revision) == (victim.status, victim.revision)
    assert await engine.runs.count() == 1


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (DEEP, "nested deeper than 64"),
        (10**5000, "64-bit"),
        (-(2**63) - 1, "64-bit"),
        ({"name": SURROGATE}, "surrogate"),
        ({SURROGATE: 1}, "surrogate"),
    ],
    ids=["10000-deep", "10**5000", "below int64", "surrogate value", "surrogate key"],
)
async def test_an_output_no_store_can_hold_fails_the_step_once(
    env: Env, value: Any, needle: str
) -> None:
    calls: list[int] = []

    async def produce(ctx: StepContext) -> Any:
        calls.append(ctx.attempt)
        return value

    async with env.engine() as engine:
        wf = engine.workflow("unstorable", steps={"produce": produce})
        run = await wf.start()
        done = await wf.wait_for(run.id, timeout=10)
    assert calls == [1]
    assert done.status == RunStatus.FAILED
    assert done.error is not None
    assert done.error.code == ErrorCode.STEP_FAILED.value
    assert needle in done.error.message


async def test_the_deepest_storable_output_round_trips_on_every_store(env: Env) -> None:
    deepest = _deep(63)

    async with env.engine() as engine:
        wf = engine.workflow("deep", steps={"produce": lambda ctx: {"v": deepest[0]}})
        run = await wf.start()
        done = await wf.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.DONE
    assert done.output == {"v": deepest[0]}
    again = await env.engine().runs.get(run.id)
    assert again is not None and again.output == done.output
