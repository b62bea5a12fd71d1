"""``engine.migrate_run`` and ``engine.runs.migrate``: runs in flight moved onto a new version."""

from __future__ import annotations

from typing import Any

import pytest

import streamline_core._runtime.migration as migration
from streamline_core import (
    Concurrency,
    Engine,
    ErrorCode,
    InvalidStateError,
    RunStatus,
    StepContext,
    StepStatus,
    ValidationError,
    WorkflowNotFoundError,
)
from streamline_core.run import WorkflowRun
from tests.conftest import Env
from tests.helpers import settle_until, stored


def _statuses(run: WorkflowRun) -> list[tuple[str, str]]:
    return [(s.step_id, s.status.value) for s in run.steps]


async def _wait_go(ctx: StepContext) -> None:
    await ctx.wait_for("go")


async def _ask(ctx: StepContext) -> None:
    await ctx.wait("approve?")


def _never(ctx: StepContext) -> None:
    raise AssertionError(f"step {ctx.step_id} of the old version ran")


async def _waiting_at(env: Env, engine: Engine, run_id: str, step_id: str) -> WorkflowRun:
    await settle_until(
        env,
        stored(
            env, run_id, lambda r: r.status == RunStatus.WAITING and r.current_step_id == step_id
        ),
    )
    run = await engine.runs.get(run_id)
    assert run is not None
    return run


async def _document(env: Env, run_id: str) -> dict[str, Any]:
    run = await env.store.get(run_id)
    assert run is not None
    return run.model_dump()


async def test_a_waiting_run_keeps_its_outputs_and_its_wait_then_finishes_on_the_new_version(
    env: Env,
) -> None:
    async with env.engine() as engine:
        engine.workflow(
            "onboarding", steps={"a": lambda ctx: "A1", "b": _wait_go, "c": _never}, version="1"
        )
        v2 = engine.workflow(
            "onboarding",
            steps={
                "a": _never,
                "pre": _never,  # new, before the cursor: recorded skipped
                "b": _wait_go,
                "c": lambda ctx: {"a": ctx.get_output("a"), "b": ctx.get_output("b")},
                "d": lambda ctx: "d2",
            },
            version="2",
        )
        run = await engine.get_workflow("onboarding", "1").start({"user": 7})
        before = await _waiting_at(env, engine, run.id, "b")

        moved = await engine.migrate_run(run.id, to_version="2")

        assert moved.workflow_version == "2"
        assert moved.status == RunStatus.WAITING
        assert moved.current_step_id == "b"
        assert _statuses(moved) == [
            ("a", "done"),
            ("pre", "skipped"),
            ("b", "waiting"),
            ("c", "pending"),
            ("d", "pending"),
        ]
        assert moved.steps[0].output == "A1"
        assert moved.wait == before.wait
        assert (moved.id, moved.input, moved.context, moved.meta) == (
            before.id,
            before.input,
            before.context,
            before.meta,
        )
        assert moved.lease is None
        assert await engine.emit_event("go", {"ok": 1}) == 1
        done = await v2.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.DONE
    assert done.output == "d2"
    assert done.steps[3].output == {"a": "A1", "b": {"ok": 1}}


async def test_step_map_carries_renamed_steps_and_maps_the_cursor(env: Env) -> None:
    async with env.engine() as engine:
        engine.workflow("flow", steps={"a": lambda ctx: 10, "b": _ask}, version="1")
        v2 = engine.workflow(
            "flow",
            steps={
                "first": _never,
                "approve": _ask,
                "finish": lambda ctx: [ctx.get_output("first"), ctx.get_output("approve")],
            },
            version="2",
        )
        run = await engine.get_workflow("flow", "1").start()
        await _waiting_at(env, engine, run.id, "b")

        moved = await engine.migrate_run(
            run.id, to_version="2", step_map={"a": "first", "b": "approve"}
        )

        assert moved.current_step_id == "approve"
        assert _statuses(moved) == [
            ("first", "done"),
            ("approve", "waiting"),
            ("finish", "pending"),
        ]
        await v2.resume(run.id, "yes")
        done = await v2.wait_for(run.id, timeout=10)
    assert done.output == [10, "yes"]


async def test_a_cursor_with_no_counterpart_is_refused_and_nothing_is_written(env: Env) -> None:
    async with env.engine() as engine:
        engine.workflow("flow", steps={"a": lambda ctx: 1, "b": _ask}, version="1")
        engine.workflow("flow", steps={"a": _never, "x": _never}, version="2")
        run = await engine.get_workflow("flow", "1").start()
        await _waiting_at(env, engine, run.id, "b")
        before = await _document(env, run.id)

        with pytest.raises(ValidationError) as err:
            await engine.migrate_run(run.id, to_version="2")
        with pytest.raises(ValidationError):
            await engine.migrate_run(run.id, to_version="2", step_map={"a": "x"})

        assert await _document(env, run.id) == before
    assert err.value.code == ErrorCode.VALIDATION_ERROR
    assert "'b'" in str(err.value) and "step_map" in str(err.value)


@pytest.mark.parametrize(
    "step_map",
    [
        "a=b",
        {1: "a"},
        {"a": 2},
        {"nope": "a"},
        {"a": "nope"},
        {"a": "b", "b": "b"},
    ],
)
async def test_a_bad_step_map_is_refused_and_nothing_is_written(env: Env, step_map: Any) -> None:
    engine = env.engine()
    engine.workflow("flow", steps={"a": lambda ctx: 1, "b": lambda ctx: 2}, version="1")
    engine.workflow("flow", steps={"a": lambda ctx: 1, "b": lambda ctx: 2}, version="2")
    run = await engine.get_workflow("flow", "1").start()
    before = await _document(env, run.id)
    with pytest.raises(ValidationError):
        await engine.migrate_run(run.id, to_version="2", step_map=step_map)
    with pytest.raises(ValidationError):
        await engine.runs.migrate(
            workflow_id="flow", from_version="1", to_version="2", step_map=step_map
        )
    assert await _document(env, run.id) == before


async def test_unknown_runs_versions_and_finished_runs_are_refused(env: Env) -> None:
    async with env.engine() as engine:
        v1 = engine.workflow("flow", steps={"a": lambda ctx: 1}, version="1")
        engine.workflow("flow", steps={"a": lambda ctx: 2}, version="2")
        done = await v1.wait_for((await v1.start()).id, timeout=10)
        with pytest.raises(InvalidStateError):
            await engine.migrate_run(done.id, to_version="2")
        with pytest.raises(WorkflowNotFoundError):
            await engine.migrate_run(done.id, to_version="9")
        with pytest.raises(WorkflowNotFoundError):
            await engine.migrate_run("no-such-run", to_version="2")
        with pytest.raises(WorkflowNotFoundError):
            await engine.runs.migrate(workflow_id="flow", from_version="1", to_version="9")
        with pytest.raises(ValidationError):
            await engine.runs.migrate(workflow_id="flow", from_version="2", to_version="2")
        with pytest.raises(ValidationError):
            await engine.migrate_run(done.id, to_version=2)  # type: ignore[arg-type]
        assert (await _document(env, done.id))["workflow_version"] == "1"


async def test_a_run_under_a_live_lease_is_refused_and_an_expired_lease_is_not(env: Env) -> None:
    client = env.engine()
    client.workflow("flow", steps={"a": _never, "b": _never}, version="1")
    client.workflow("flow", steps={"a": lambda ctx: "v2", "b": lambda ctx: "b2"}, version="2")
    run = await client.get_workflow("flow", "1").start()
    [claimed] = await env.store.claim("elsewhere", env.clock.now(), 30, 10, {"flow"})
    assert claimed.lease is not None
    before = await _document(env, run.id)

    with pytest.raises(InvalidStateError) as err:
        await client.migrate_run(run.id, to_version="2")
    assert "elsewhere" in str(err.value)
    assert await _document(env, run.id) == before

    await env.clock.advance(31)  # the worker died: its lease ran out
    moved = await client.migrate_run(run.id, to_version="2")
    assert moved.workflow_version == "2"
    assert moved.lease is None
    assert moved.epoch == claimed.epoch + 1
    assert moved.steps[0].status == StepStatus.PENDING

    worker = env.engine()
    worker.workflow("flow", steps={"a": _never, "b": _never}, version="1")
    v2 = worker.workflow("flow", steps={"a": lambda ctx: "v2", "b": lambda ctx: "b2"}, version="2")
    async with worker:
        done = await v2.wait_for(run.id, timeout=10)
    assert done.status == RunStatus.DONE
    assert [s.output for s in done.steps] == ["v2", "b2"]


async def test_a_sleeping_run_keeps_its_timer_on_the_new_version(env: Env) -> None:
    async def nap(ctx: StepContext) -> None:
        await ctx.sleep(60)

    async with env.engine() as engine:
        engine.workflow("flow", steps={"nap": nap, "after": _never}, version="1")
        v2 = engine.workflow(
            "flow", steps={"nap": nap, "after": lambda ctx: "woke on v2"}, version="2"
        )
        run = await engine.get_workflow("flow", "1").start()
        before = await _waiting_at(env, engine, run.id, "nap")
        moved = await engine.migrate_run(run.id, to_version="2")
        assert moved.next_run_at == before.next_run_at
        await env.clock.advance(61)
        done = await v2.wait_for(run.id, timeout=10)
    assert done.output == "woke on v2"


async def test_a_paused_run_moves_and_stays_paused(env: Env) -> None:
    client = env.engine()
    client.workflow("flow", steps={"a": _never}, version="1")
    client.workflow("flow", steps={"a": lambda ctx: 1}, version="2")
    run = await client.get_workflow("flow", "1").start()
    await client.runs.pause(run.id)
    moved = await client.migrate_run(run.id, "2")
    assert moved.paused is True
    assert moved.workflow_version == "2"
    with pytest.raises(InvalidStateError):
        await client.migrate_run(run.id, "2")  # on version 2 already


class _Interfering:
    """A store whose first transition of ``victim`` meets a concurrent change."""

    def __init__(self, inner: Any, victim: str, times: int) -> None:
        self.inner = inner
        self.victim = victim
        self.times = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Any,
        owner: str | None = None,
        *,
        write_id: str | None = None,
    ) -> WorkflowRun:
        if run_id == self.victim and self.times > 0 and "workflow_version" in patch:
            self.times -= 1
            current = await self.inner.get(run_id)
            await self.inner.transition(run_id, current.revision, {"meta.touched": self.times})
        return await self.inner.transition(
            run_id, expected_revision, patch, owner, write_id=write_id
        )


async def test_bulk_migrate_pages_moves_unleased_runs_and_skips_the_rest(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migration, "PAGE", 2)  # several pages from a few runs
    client = env.engine()
    v1 = client.workflow("flow", steps={"a": _never, "b": _never}, version="1")
    client.workflow("flow", steps={"a": lambda ctx: 1, "b": lambda ctx: 2}, version="2")
    other = client.workflow("other", steps={"a": _never}, version="1")
    runs = [await v1.start({"n": n}) for n in range(5)]
    await other.start()
    cancelled = await v1.start()
    await v1.cancel(cancelled.id)
    [leased] = await env.store.claim("elsewhere", env.clock.now(), 30, 1, {"flow"})

    count = await client.runs.migrate(workflow_id="flow", from_version="1", to_version="2")

    assert count == 4
    versions = {r.id: (await env.store.get(r.id)).workflow_version for r in runs}  # type: ignore[union-attr]
    assert versions[leased.id] == "1"
    assert sorted(versions.values()) == ["1", "2", "2", "2", "2"]
    assert (await env.store.get(cancelled.id)).workflow_version == "1"  # type: ignore[union-attr]
    assert await client.runs.migrate(workflow_id="flow", from_version="1", to_version="2") == 0


async def test_bulk_migrate_retries_a_run_that_changed_once_and_skips_one_that_keeps_changing(
    env: Env,
) -> None:
    client = env.engine()
    v1 = client.workflow("flow", steps={"a": _never}, version="1")
    client.workflow("flow", steps={"a": lambda ctx: 1}, version="2")
    once, twice = await v1.start(), await v1.start()
    store: Any = _Interfering(_Interfering(env.store, once.id, 1), twice.id, 2)
    engine = env.engine(store=store)
    engine.workflow("flow", steps={"a": _never}, version="1")
    engine.workflow("flow", steps={"a": lambda ctx: 1}, version="2")

    assert await engine.runs.migrate(workflow_id="flow", from_version="1", to_version="2") == 1
    after_once = await env.store.get(once.id)
    after_twice = await env.store.get(twice.id)
    assert after_once is not None and after_twice is not None
    assert (after_once.workflow_version, after_once.meta) == ("2", {"touched": 0})
    assert after_twice.workflow_version == "1"


async def test_bulk_migrate_leaves_runs_whose_cursor_has_no_counterpart(env: Env) -> None:
    async with env.engine() as engine:
        v1 = engine.workflow("flow", steps={"a": lambda ctx: 1, "b": _ask}, version="1")
        engine.workflow("flow", steps={"a": lambda ctx: 1, "x": _ask}, version="2")
        waiting = await v1.start()
        await _waiting_at(env, engine, waiting.id, "b")
        assert await engine.runs.migrate(workflow_id="flow", from_version="1", to_version="2") == 0
        assert (await _document(env, waiting.id))["workflow_version"] == "1"
        moved = await engine.runs.migrate(
            workflow_id="flow", from_version="1", to_version="2", step_map={"b": "x"}
        )
        assert moved == 1
        assert (await _document(env, waiting.id))["current_step_id"] == "x"


async def test_a_tenant_engine_migrates_only_its_tenants_runs(env: Env) -> None:
    admin = env.engine()
    admin.workflow("flow", steps={"a": _never}, version="1")
    mine = await admin.get_workflow("flow").start(tenant_id="t1")
    theirs = await admin.get_workflow("flow").start(tenant_id="t2")
    scoped = env.engine(tenant_id="t1")
    scoped.workflow("flow", steps={"a": _never}, version="1")
    scoped.workflow("flow", steps={"a": lambda ctx: 1}, version="2")

    with pytest.raises(WorkflowNotFoundError):
        await scoped.migrate_run(theirs.id, "2")
    assert await scoped.runs.migrate(workflow_id="flow", from_version="1", to_version="2") == 1
    assert (await _document(env, mine.id))["workflow_version"] == "2"
    assert (await _document(env, theirs.id))["workflow_version"] == "1"


@pytest.mark.parametrize("limited_on", ["1", "2"])
async def test_a_migrated_run_takes_the_flow_control_of_its_new_version(
    env: Env, limited_on: str
) -> None:
    def options(version: str) -> dict[str, Any]:
        return {"concurrency": Concurrency(1)} if version == limited_on else {}

    async with env.engine() as engine:
        engine.workflow("flow", steps={"a": _wait_go, "b": _never}, version="1", **options("1"))
        v2 = engine.workflow(
            "flow", steps={"a": _wait_go, "b": lambda ctx: "v2"}, version="2", **options("2")
        )
        run = await engine.get_workflow("flow", "1").start()
        await _waiting_at(env, engine, run.id, "a")
        moved = await engine.migrate_run(run.id, "2")
        assert (moved.concurrency_key is not None) == (limited_on == "2")
        assert await engine.emit_event("go", run_id=run.id) == 1
        done = await v2.wait_for(run.id, timeout=10)
    assert done.output == "v2"
