"""``Workflow.fork``: a new run on a version, seeded with another run's work so far."""

from __future__ import annotations

from typing import Any

import pytest

from streamline_core import (
    NonRetriableError,
    RunStatus,
    StepContext,
    StepNotFoundError,
    ValidationError,
    WorkflowNotFoundError,
)
from tests.conftest import Env


def _never(ctx: StepContext) -> None:
    raise AssertionError(f"step {ctx.step_id} ran in the fork")


def _reserve(ctx: StepContext) -> str:
    ctx.set("reserved", True)
    return f"R-{ctx.input['order']}"


def _declined(ctx: StepContext) -> None:
    raise NonRetriableError("card declined")


async def _document(env: Env, run_id: str) -> dict[str, Any]:
    run = await env.store.get(run_id)
    assert run is not None
    return run.model_dump()


def _charge(ctx: StepContext) -> dict[str, Any]:
    return {"charged": ctx.get_output("reserve"), "reserved": ctx.context["reserved"]}


async def test_a_failed_run_forked_onto_v2_runs_from_the_step_to_done(env: Env) -> None:
    async with env.engine() as engine:
        v1 = engine.workflow(
            "order",
            steps={"reserve": _reserve, "charge": _declined, "ship": _never},
            context=lambda input: {"order": input["order"]},
            version="1",
        )
        v2 = engine.workflow(
            "order",
            steps={
                "reserve": _never,
                "check": _never,  # new, before from_step: recorded skipped
                "charge": _charge,
                "ship": lambda ctx: "shipped",
            },
            context=lambda input: {"never": "built"},
            version="2",
        )
        failed = await v1.wait_for(
            (await v1.start({"order": 7}, meta={"by": "ada"})).id, timeout=10
        )
        assert failed.status == RunStatus.FAILED
        source = await _document(env, failed.id)

        fork = await v2.fork(failed.id, from_step="charge")

        assert fork.id != failed.id
        assert (fork.workflow_id, fork.workflow_version) == ("order", "2")
        assert fork.meta == {"by": "ada", "forked_from": failed.id}
        assert fork.input == {"order": 7}
        assert fork.context == {"order": 7, "reserved": True}
        assert fork.current_step_id == "charge"
        assert [s.status.value for s in fork.steps[:2]] == ["done", "skipped"]
        assert fork.steps[0].output == "R-7"
        done = await v2.wait_for(fork.id, timeout=10)
        assert done.status == RunStatus.DONE
        assert done.steps[2].output == {"charged": "R-7", "reserved": True}
        assert done.output == "shipped"
        assert await _document(env, failed.id) == source  # the source run is untouched


async def test_a_fork_from_an_earlier_step_runs_the_later_steps_again(env: Env) -> None:
    ran: list[str] = []

    def step(name: str) -> Any:
        def handler(ctx: StepContext) -> str:
            ran.append(name)
            return name.upper()

        return handler

    async with env.engine() as engine:
        wf = engine.workflow("abc", steps={"a": step("a"), "b": step("b"), "c": step("c")})
        first = await wf.wait_for((await wf.start()).id, timeout=10)
        fork = await wf.fork(first.id, "b")
        assert [s.status.value for s in fork.steps] in (
            ["done", "pending", "pending"],
            ["done", "running", "pending"],  # taken by this worker at once
        )
        done = await wf.wait_for(fork.id, timeout=10)
    assert ran == ["a", "b", "c", "b", "c"]
    assert done.output == "C"


async def test_fork_with_a_step_map_carries_renamed_outputs(env: Env) -> None:
    async with env.engine() as engine:
        v1 = engine.workflow("flow", steps={"old": lambda ctx: 41, "end": lambda ctx: 0})
        v2 = engine.workflow(
            "flow",
            steps={"new": _never, "end": lambda ctx: ctx.get_output("new") + 1},
            version="2",
        )
        source = await v1.wait_for((await v1.start()).id, timeout=10)
        fork = await v2.fork(source.id, from_step="end", step_map={"old": "new"})
        done = await v2.wait_for(fork.id, timeout=10)
    assert done.output == 42


async def test_a_client_engine_forks_and_a_worker_finishes_the_fork(env: Env) -> None:
    client = env.engine()
    client.workflow("flow", steps={"a": lambda ctx: 1, "b": lambda ctx: 2})
    wf = client.get_workflow("flow")
    source = await wf.start()
    fork = await wf.fork(source.id, from_step="a")
    assert fork.status == RunStatus.RUNNING
    assert fork.lease is None
    worker = env.engine()
    worker.workflow("flow", steps={"a": lambda ctx: 1, "b": lambda ctx: "forked"})
    async with worker:
        done = await worker.get_workflow("flow").wait_for(fork.id, timeout=10)
    assert done.output == "forked"


async def test_bad_forks_are_refused_and_create_nothing(env: Env) -> None:
    client = env.engine()
    wf = client.workflow("flow", steps={"a": lambda ctx: 1})
    other = client.workflow("other", steps={"a": lambda ctx: 1})
    source = await wf.start()
    theirs = await other.start()

    with pytest.raises(StepNotFoundError):
        await wf.fork(source.id, from_step="nope")
    with pytest.raises(WorkflowNotFoundError):
        await wf.fork("no-such-run", from_step="a")
    with pytest.raises(WorkflowNotFoundError):
        await wf.fork(theirs.id, from_step="a")  # a run of another workflow
    with pytest.raises(ValidationError):
        await wf.fork(source.id, from_step="a", step_map={"a": "zzz"})
    with pytest.raises(ValidationError):
        await wf.fork({"$ne": None}, from_step="a")  # type: ignore[arg-type]
    assert await client.runs.count() == 2


async def test_forks_respect_the_tenant_scope(env: Env) -> None:
    admin = env.engine()
    admin.workflow("flow", steps={"a": lambda ctx: 1})
    mine = await admin.get_workflow("flow").start(tenant_id="t1")
    theirs = await admin.get_workflow("flow").start(tenant_id="t2")
    scoped = env.engine(tenant_id="t1")
    wf = scoped.workflow("flow", steps={"a": lambda ctx: 1})

    with pytest.raises(WorkflowNotFoundError):
        await wf.fork(theirs.id, from_step="a")
    fork = await wf.fork(mine.id, from_step="a")
    assert fork.tenant_id == "t1"
    assert await scoped.runs.count() == 2
