"""Child runs and joins: run_child, run_children (each mode), start_child, join, cancel cascades."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamline_core import (
    ChildWorkflowError,
    Engine,
    ErrorCode,
    NonRetriableError,
    RunStatus,
    StepContext,
    StepStatus,
    ValidationError,
    Workflow,
    WorkflowNotFoundError,
    WorkflowRun,
)
from tests.conftest import Env


async def _children(engine: Engine, parent_id: str) -> list[WorkflowRun]:
    page = await engine.runs.find(parent_run_id=parent_id, sort="created_at", limit=100)
    return page.items


async def _until(env: Env, check: Any, what: str, rounds: int = 200) -> None:
    for _ in range(rounds):
        await env.settle()
        if await check():
            return
    raise AssertionError(f"never: {what}")


def _doubler(engine: Engine) -> Workflow:
    async def double(ctx: StepContext) -> int:
        return int(ctx.input["n"]) * 2

    return engine.workflow("double", steps={"double": double})


def _approval(engine: Engine) -> Workflow:
    """A child that waits for a person: the test decides when (and how) it ends."""

    async def wait(ctx: StepContext) -> None:
        await ctx.wait("approve")

    async def after(ctx: StepContext) -> Any:
        return ctx.get_output("wait")

    return engine.workflow("approval", steps={"wait": wait, "after": after})


async def _settled(env: Env, wf: Workflow, run_id: str) -> WorkflowRun:
    async def ended() -> bool:
        run = await wf.get(run_id)
        return run is not None and run.is_terminal

    await _until(env, ended, f"run {run_id} ends")
    run = await wf.get(run_id)
    assert run is not None
    return run


# -- run_child / run_children ----------------------------------------------------------


async def test_run_child_output_becomes_the_step_output(env: Env) -> None:
    async with env.engine() as engine:
        double = _doubler(engine)

        async def pay(ctx: StepContext) -> None:
            await ctx.run_child(double, {"n": 21})

        async def after(ctx: StepContext) -> Any:
            return {"child": ctx.get_output("pay")}

        parent = engine.workflow("parent", steps={"pay": pay, "after": after})
        run = await parent.start()
        done = await _settled(env, parent, run.id)
        kids = await _children(engine, run.id)
    assert done.status == RunStatus.DONE
    assert done.output == {"child": 42}
    assert len(kids) == 1
    assert kids[0].parent_run_id == run.id
    assert kids[0].parent_step_id == "pay"
    assert kids[0].workflow_id == "double"
    assert kids[0].status == RunStatus.DONE
    assert await engine.runs.count(parent_run_id=run.id) == 1


async def test_a_step_run_again_by_a_goto_loop_starts_a_new_child_each_pass(env: Env) -> None:
    async with env.engine() as engine:
        double = _doubler(engine)

        async def spawn(ctx: StepContext) -> None:
            await ctx.run_child(double, {"n": ctx.context.get("n", 0)})

        async def loop(ctx: StepContext) -> Any:
            n = ctx.context.get("n", 0)
            if n < 2:
                ctx.set("n", n + 1)
                await ctx.goto("spawn")
            return ctx.get_output("spawn")

        parent = engine.workflow("looper", steps={"spawn": spawn, "loop": loop})
        run = await parent.start()
        done = await _settled(env, parent, run.id)
        kids = await _children(engine, run.id)
    assert done.status == RunStatus.DONE
    assert done.output == 4  # the third pass's child doubled n=2
    assert sorted(k.input["n"] for k in kids) == [0, 1, 2]
    assert len({k.id for k in kids}) == 3


async def test_run_children_all_returns_the_outputs_in_input_order(env: Env) -> None:
    async with env.engine() as engine:
        _doubler(engine)

        async def fan(ctx: StepContext) -> None:
            await ctx.run_children([("double", {"n": n}) for n in (3, 1, 2)], mode="all")

        parent = engine.workflow("parent", steps={"fan": fan})
        run = await parent.start()
        done = await _settled(env, parent, run.id)
    assert done.status == RunStatus.DONE
    assert done.output == [6, 2, 4]
    assert done.steps[0].wait is None


async def test_all_settled_lists_every_childs_status_output_and_error(env: Env) -> None:
    async with env.engine() as engine:
        _doubler(engine)

        async def boom(ctx: StepContext) -> None:
            raise NonRetriableError("no luck")

        engine.workflow("boom", steps={"boom": boom})

        async def fan(ctx: StepContext) -> None:
            await ctx.run_children([("double", {"n": 1}), ("boom", None)], mode="all_settled")

        parent = engine.workflow("parent", steps={"fan": fan})
        run = await parent.start()
        done = await _settled(env, parent, run.id)
    assert done.status == RunStatus.DONE
    assert done.output[0] == {"status": "done", "output": 2, "error": None}
    assert done.output[1]["status"] == "failed"
    assert done.output[1]["output"] is None
    assert done.output[1]["error"]["code"] == ErrorCode.STEP_FAILED.value
    assert "no luck" in done.output[1]["error"]["message"]


async def test_any_takes_the_first_done_child_and_cancels_the_others(env: Env) -> None:
    async with env.engine() as engine:
        approval = _approval(engine)

        async def fan(ctx: StepContext) -> None:
            await ctx.run_children([(approval, None)] * 3, mode="any")

        parent = engine.workflow("parent", steps={"fan": fan})
        run = await parent.start()

        async def three() -> bool:
            kids = await _children(engine, run.id)
            return len(kids) == 3 and all(k.status == RunStatus.WAITING for k in kids)

        await _until(env, three, "three children wait")
        kids = await _children(engine, run.id)
        await approval.cancel(kids[0].id)  # a failed/cancelled child does not decide "any"
        await approval.resume(kids[1].id, "second")
        done = await _settled(env, parent, run.id)
        third = await _settled(env, approval, kids[2].id)
    assert done.status == RunStatus.DONE
    assert done.output == "second"
    assert third.status == RunStatus.CANCELLED


async def test_any_fails_when_every_child_failed(env: Env) -> None:
    async with env.engine() as engine:
        approval = _approval(engine)

        async def fan(ctx: StepContext) -> None:
            await ctx.run_children([(approval, None)] * 2, mode="any")

        parent = engine.workflow("parent", steps={"fan": _once(fan)})
        run = await parent.start()
        await _until(env, lambda: _count(engine, run.id, 2), "two children")
        for kid in await _children(engine, run.id):
            await _settled_wait(env, approval, kid.id)
            await approval.cancel(kid.id)
        done = await _settled(env, parent, run.id)
    assert done.status == RunStatus.FAILED
    assert done.steps[0].error is not None
    assert done.steps[0].error.code == ErrorCode.CHILD_FAILED.value


async def test_race_whose_first_finisher_failed_fails_the_step(env: Env) -> None:
    async with env.engine() as engine:
        approval = _approval(engine)

        async def fan(ctx: StepContext) -> None:
            await ctx.run_children([(approval, None)] * 2, mode="race")

        parent = engine.workflow("parent", steps={"fan": _once(fan)})
        run = await parent.start()
        await _until(env, lambda: _count(engine, run.id, 2), "two children")
        kids = await _children(engine, run.id)
        await _settled_wait(env, approval, kids[1].id)
        await approval.cancel(kids[1].id)
        done = await _settled(env, parent, run.id)
        other = await _settled(env, approval, kids[0].id)
    assert done.status == RunStatus.FAILED
    assert done.error is not None
    assert done.error.details["step_error_code"] == ErrorCode.CHILD_FAILED.value
    assert other.status == RunStatus.CANCELLED  # the loser of the race


async def test_race_takes_the_first_child_to_end(env: Env) -> None:
    async with env.engine() as engine:
        approval = _approval(engine)

        async def fan(ctx: StepContext) -> None:
            await ctx.run_children([(approval, None)] * 2, mode="race")

        parent = engine.workflow("parent", steps={"fan": fan})
        run = await parent.start()
        await _until(env, lambda: _count(engine, run.id, 2), "two children")
        kids = await _children(engine, run.id)
        await _settled_wait(env, approval, kids[1].id)
        await approval.resume(kids[1].id, "fast")
        done = await _settled(env, parent, run.id)
    assert done.output == "fast"


# -- failure and retry ------------------------------------------------------------------


async def test_a_failed_child_fails_the_step_and_a_retry_starts_a_new_child(env: Env) -> None:
    calls: list[str] = []
    async with env.engine() as engine:

        async def flaky(ctx: StepContext) -> str:
            calls.append(ctx.run_id)
            if len(calls) == 1:
                raise NonRetriableError("first child fails")
            return "ok"

        engine.workflow("flaky", steps={"work": flaky})
        errors: list[ChildWorkflowError] = []

        @engine.on("step:failed")
        def seen(event: Any) -> None:
            if isinstance(event.error, ChildWorkflowError):
                errors.append(event.error)

        async def pay(ctx: StepContext) -> None:
            await ctx.run_child("flaky")

        parent = engine.workflow(
            "parent", steps={"pay": {"handler": pay, "retries": 2, "retry_delay": 1.0}}
        )
        run = await parent.start()

        async def retrying() -> bool:
            r = await parent.get(run.id)
            return r is not None and r.wait is not None and r.wait.kind == "retry"

        await _until(env, retrying, "the step waits to retry")
        await env.clock.advance(5)
        done = await _settled(env, parent, run.id)
        kids = await _children(engine, run.id)
    assert done.status == RunStatus.DONE
    assert done.output == "ok"
    assert len(kids) == 2 and kids[0].id != kids[1].id
    assert {k.status for k in kids} == {RunStatus.FAILED, RunStatus.DONE}
    assert len(errors) == 1
    assert errors[0].code == ErrorCode.CHILD_FAILED
    assert errors[0].status == 500
    assert errors[0].child_run_id == calls[0]
    assert errors[0].child_error is not None
    assert errors[0].child_error["code"] == ErrorCode.STEP_FAILED.value


async def test_a_failed_child_under_all_cancels_the_other_children(env: Env) -> None:
    async with env.engine() as engine:
        approval = _approval(engine)

        async def fan(ctx: StepContext) -> None:
            await ctx.run_children([(approval, None)] * 3)

        parent = engine.workflow("parent", steps={"fan": _once(fan)})
        run = await parent.start()
        await _until(env, lambda: _count(engine, run.id, 3), "three children")
        kids = await _children(engine, run.id)
        await _settled_wait(env, approval, kids[0].id)
        await approval.cancel(kids[0].id, "no")
        done = await _settled(env, parent, run.id)
        rest = [await _settled(env, approval, k.id) for k in kids[1:]]
    assert done.status == RunStatus.FAILED
    assert done.steps[0].status == StepStatus.FAILED
    assert [r.status for r in rest] == [RunStatus.CANCELLED, RunStatus.CANCELLED]


# -- start_child and join ------------------------------------------------------------------


async def test_start_child_returns_the_id_at_once_and_join_waits_for_it(env: Env) -> None:
    async with env.engine() as engine:
        double = _doubler(engine)
        ids: list[str] = []

        async def kick_off(ctx: StepContext) -> str:
            child_id = await ctx.start_child(double, {"n": 5}, key="daily")
            ids.append(child_id)
            ctx.set("child", child_id)
            return child_id

        async def later(ctx: StepContext) -> None:
            await ctx.join([ctx.context["child"]], mode="all")

        parent = engine.workflow("parent", steps={"kick_off": kick_off, "later": later})
        run = await parent.start()
        done = await _settled(env, parent, run.id)
    assert done.status == RunStatus.DONE
    assert done.output == [10]
    assert done.steps[0].output == ids[0]


async def test_join_of_ids_that_are_not_this_runs_children_is_a_validation_error(
    env: Env,
) -> None:
    async with env.engine() as engine:
        double = _doubler(engine)
        other = await double.start({"n": 1})
        bad: list[BaseException] = []

        async def later(ctx: StepContext) -> None:
            for ids in ([other.id], ["nope"], [], "x"):
                try:
                    await ctx.join(ids)  # type: ignore[arg-type]
                except ValidationError as exc:
                    bad.append(exc)
            try:
                await ctx.join(["a"], mode="most")
            except ValidationError as exc:
                bad.append(exc)

        parent = engine.workflow("parent", steps={"later": later})
        run = await parent.start()
        done = await _settled(env, parent, run.id)
    assert done.status == RunStatus.DONE
    assert len(bad) == 5
    assert all(e.code == ErrorCode.VALIDATION_ERROR for e in bad)


async def test_bad_child_arguments_are_coded_errors_and_start_nothing(env: Env) -> None:
    async with env.engine() as engine:
        _doubler(engine)
        bad: list[Exception] = []

        async def step(ctx: StepContext) -> None:
            attempts: list[Any] = [
                lambda: ctx.run_child("no-such-workflow", {}),
                lambda: ctx.start_child("double", {"when": object()}),
                lambda: ctx.run_children([("double", {"n": 1}), ("double", {1, 2})]),
                lambda: ctx.run_children([("double", {"n": 1}), ("missing", None)]),
                lambda: ctx.run_children([]),
                lambda: ctx.run_children([("double", {"n": 1})], mode="some"),
                lambda: ctx.start_child(42, None),
                lambda: ctx.start_child("double", {"n": 1}, key=""),
            ]
            for attempt in attempts:
                try:
                    await attempt()
                except (ValidationError, WorkflowNotFoundError) as exc:
                    bad.append(exc)

        parent = engine.workflow("parent", steps={"step": step})
        run = await parent.start()
        done = await _settled(env, parent, run.id)
        assert await engine.runs.count(parent_run_id=run.id) == 0
        assert await engine.runs.count() == 1
    assert done.status == RunStatus.DONE
    codes = [getattr(e, "code", None) for e in bad]
    assert codes == [
        ErrorCode.WORKFLOW_NOT_FOUND,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.WORKFLOW_NOT_FOUND,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.VALIDATION_ERROR,
        ErrorCode.VALIDATION_ERROR,
    ]


async def test_children_run_in_the_parents_tenant(env: Env) -> None:
    async with env.engine(tenant_id="acme") as engine:
        double = _doubler(engine)

        async def pay(ctx: StepContext) -> None:
            await ctx.run_child(double, {"n": 2})

        parent = engine.workflow("parent", steps={"pay": pay})
        run = await parent.start()
        done = await _settled(env, parent, run.id)
        kids = await _children(engine, run.id)
    assert done.output == 4
    assert [k.tenant_id for k in kids] == ["acme"]


# -- timeouts, lost wake-ups, re-execution ---------------------------------------------------


async def test_a_join_that_times_out_fails_the_step_with_step_timeout(env: Env) -> None:
    async with env.engine() as engine:
        approval = _approval(engine)

        async def pay(ctx: StepContext) -> None:
            await ctx.run_child(approval, None, timeout=60)

        parent = engine.workflow("parent", steps={"pay": _once(pay)})
        run = await parent.start()
        await _until(env, lambda: _count(engine, run.id, 1), "a child")
        await _settled_wait(env, parent, run.id)
        await env.clock.advance(61)
        done = await _settled(env, parent, run.id)
        kid = (await _children(engine, run.id))[0]
        kid = await _settled(env, approval, kid.id)
    assert done.status == RunStatus.FAILED
    assert done.steps[0].error is not None
    assert done.steps[0].error.code == ErrorCode.STEP_TIMEOUT.value
    assert kid.status == RunStatus.CANCELLED  # the join started it: its timeout cancels it


async def test_a_join_of_earlier_children_that_times_out_leaves_them_running(env: Env) -> None:
    events: list[Any] = []
    async with env.engine() as engine:
        approval = _approval(engine)
        engine.on("workflow:child-started", events.append)

        async def kick_off(ctx: StepContext) -> None:
            ctx.set("child", await ctx.start_child(approval, None, key="k"))

        async def later(ctx: StepContext) -> None:
            await ctx.join([ctx.context["child"]], timeout=5)

        parent = engine.workflow("parent", steps={"kick_off": kick_off, "later": _once(later)})
        run = await parent.start()
        await _until(env, lambda: _count(engine, run.id, 1), "a child")
        await _settled_wait(env, parent, run.id)
        await env.clock.advance(6)
        done = await _settled(env, parent, run.id)
        kid = (await _children(engine, run.id))[0]
    assert done.status == RunStatus.FAILED
    assert done.steps[1].error is not None
    assert done.steps[1].error.code == ErrorCode.STEP_TIMEOUT.value
    assert kid.status == RunStatus.WAITING  # joined, not started, by the timed-out step
    assert [(e.run_id, e.step_id, e.data) for e in events] == [
        (run.id, "kick_off", {"child_run_id": kid.id, "workflow_id": "approval", "detached": False})
    ]


async def test_a_lost_wake_up_delays_the_parent_until_its_recheck(env: Env) -> None:
    async with env.engine() as engine:
        approval = _approval(engine)

        async def pay(ctx: StepContext) -> None:
            await ctx.run_child(approval, None)

        parent = engine.workflow("parent", steps={"pay": pay}, join_recheck=10)
        run = await parent.start()
        await _until(env, lambda: _count(engine, run.id, 1), "a child")
        await _settled_wait(env, parent, run.id)
        kid = (await _children(engine, run.id))[0]
        await _settled_wait(env, approval, kid.id)
        engine._rt.events.on_end = None  # the child's end notifies nobody (a crash)
        await approval.resume(kid.id, "late")
        await _settled(env, approval, kid.id)
        for _ in range(5):
            await env.settle()
        still = await parent.get(run.id)
        assert still is not None and still.status == RunStatus.WAITING
        await env.clock.advance(11)
        done = await _settled(env, parent, run.id)
    assert done.output == "late"


async def test_a_step_re_executed_after_a_crash_finds_the_children_it_started(env: Env) -> None:
    started: list[str] = []
    gate = asyncio.Event()

    def define(engine: Engine) -> Workflow:
        _doubler(engine)

        async def fan(ctx: StepContext) -> None:
            a = await ctx.start_child("double", {"n": 1}, key="a")
            b = await ctx.start_child("double", {"n": 2})
            started.extend([a, b])
            if not gate.is_set():
                await asyncio.Event().wait()  # crash here, after starting both children
            await ctx.join([a, b])

        return engine.workflow("parent", steps={"fan": fan})

    first = env.engine(lease=10)
    await first.start()
    parent = define(first)
    run = await parent.start()
    await _until(env, lambda: _count(first, run.id, 2), "two children")
    first._abandon()
    gate.set()
    async with env.engine(lease=10) as second:
        parent2 = define(second)
        await env.clock.advance(11)
        done = await _settled(env, parent2, run.id)
        kids = await _children(second, run.id)
    assert done.status == RunStatus.DONE
    assert done.output == [2, 4]
    assert len(kids) == 2
    assert started[:2] == started[2:4]  # the same ids both times
    assert done.steps[0].attempts == 1  # a recovery is not an attempt


async def test_a_rewound_step_starts_new_children(env: Env) -> None:
    async with env.engine() as engine:
        double = _doubler(engine)

        async def pay(ctx: StepContext) -> None:
            await ctx.run_child(double, {"n": 4})

        parent = engine.workflow("parent", steps={"pay": pay})
        run = await parent.start()
        await _settled(env, parent, run.id)
        await parent.rewind_to(run.id, "pay")
        again = await _settled(env, parent, run.id)
        kids = await _children(engine, run.id)
    assert again.status == RunStatus.DONE and again.output == 8
    assert len(kids) == 2 and kids[0].id != kids[1].id


# -- cancel cascades ---------------------------------------------------------------------------


async def test_cancel_cascades_to_children_and_grandchildren_but_not_detached_ones(
    env: Env,
) -> None:
    async with env.engine() as engine:
        approval = _approval(engine)

        async def middle_step(ctx: StepContext) -> None:
            await ctx.run_child(approval, None)

        middle = engine.workflow("middle", steps={"m": middle_step})

        async def top_step(ctx: StepContext) -> None:
            await ctx.start_child(approval, None, key="free", detached=True)
            await ctx.run_child(middle, None)

        top = engine.workflow("top", steps={"t": top_step})
        run = await top.start()

        async def grandchild() -> bool:
            kids = await _children(engine, run.id)
            mids = [k for k in kids if k.workflow_id == "middle"]
            return bool(mids) and await _count(engine, mids[0].id, 1)

        await _until(env, grandchild, "a grandchild")
        await _settled_wait(env, top, run.id)
        kids = await _children(engine, run.id)
        mid = next(k for k in kids if k.workflow_id == "middle")
        free = next(k for k in kids if k.detached)
        grand = (await _children(engine, mid.id))[0]
        await top.cancel(run.id, "stop")
        mid_after = await _settled(env, middle, mid.id)
        grand_after = await _settled(env, approval, grand.id)
        free_after = await approval.get(free.id)
    assert mid_after.status == RunStatus.CANCELLED
    assert grand_after.status == RunStatus.CANCELLED
    assert free_after is not None and free_after.status == RunStatus.WAITING


class _CancelFirst:
    """A store whose first child create lets a cancel of the parent run to its end first.

    So the cancel's look for children finds none: only the starting step's
    read of its parent, after the create, can catch the child.
    """

    def __init__(self, inner: Any, cancel: Any) -> None:
        self._inner = inner
        self._cancel = cancel
        self.fired = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def create(self, run: WorkflowRun, **options: Any) -> Any:
        if run.parent_run_id is not None and not self.fired:
            self.fired = True
            await self._cancel(run.parent_run_id)
        return await self._inner.create(run, **options)


@pytest.mark.parametrize("canceller", ["client", "same engine"])
async def test_a_child_created_after_the_cancel_looked_for_children_is_cancelled(
    env: Env, canceller: str
) -> None:
    client = env.engine()
    holder: list[Engine] = []

    async def cancel(parent_id: str) -> None:
        engine = client if canceller == "client" else holder[0]
        await engine.runs.cancel(parent_id, "stop")
        assert await engine.runs.count(parent_run_id=parent_id) == 0  # nothing to cascade to

    store = _CancelFirst(env.store, cancel)
    async with env.engine(store=store) as engine:
        holder.append(engine)
        approval = _approval(engine)

        async def fan(ctx: StepContext) -> None:
            await ctx.run_children([(approval, None)] * 2)

        parent = engine.workflow("parent", steps={"fan": fan})
        run = await parent.start()

        async def all_cancelled() -> bool:
            kids = await _children(engine, run.id)
            return len(kids) >= 1 and all(k.status == RunStatus.CANCELLED for k in kids)

        await _until(env, all_cancelled, "every child cancelled")
        final = await parent.get(run.id)
    assert store.fired
    assert final is not None and final.status == RunStatus.CANCELLED


@pytest.mark.parametrize("cancel_after", [0, 1, 2, 3, 5, 8])
async def test_cancel_racing_child_creation_never_strands_a_child(
    env: Env, cancel_after: int
) -> None:
    """Cancel lands after ``cancel_after`` event-loop turns of the start: no child stays active."""
    async with env.engine() as engine:
        approval = _approval(engine)
        go = asyncio.Event()

        async def fan(ctx: StepContext) -> None:
            await go.wait()
            await ctx.run_children([(approval, None)] * 2)

        parent = engine.workflow("parent", steps={"fan": fan})
        run = await parent.start()
        await env.settle()
        go.set()
        for _ in range(cancel_after):
            await asyncio.sleep(0)
        await parent.cancel(run.id)

        async def none_active() -> bool:
            kids = await _children(engine, run.id)
            return all(
                k.status != RunStatus.WAITING and k.status != RunStatus.RUNNING for k in kids
            )

        await _until(env, none_active, "no active child")


# -- helpers ------------------------------------------------------------------------------------


def _once(handler: Any) -> dict[str, Any]:
    return {"handler": handler, "retries": 1}


async def _count(engine: Engine, parent_id: str, n: int) -> bool:
    return await engine.runs.count(parent_run_id=parent_id) >= n


async def _settled_wait(env: Env, wf: Workflow, run_id: str) -> None:
    async def waiting() -> bool:
        run = await wf.get(run_id)
        return run is not None and run.status == RunStatus.WAITING

    await _until(env, waiting, f"run {run_id} waits")
