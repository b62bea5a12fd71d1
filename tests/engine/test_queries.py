"""engine.runs queries, cursor pagination, cleanup, and tenant scoping."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streamline_core import RunStatus, StepContext, ValidationError, WorkflowNotFoundError
from tests.conftest import Env


async def ask(ctx: StepContext) -> None:
    await ctx.wait("?")


async def test_find_filters_and_paginates(env: Env) -> None:
    async with env.engine() as engine:
        scraper = engine.workflow("web-scraper", steps={"a": lambda ctx: 1})
        approval = engine.workflow("approval", steps={"ask": ask})
        done_ids = []
        for i in range(7):
            run = await scraper.start({"url": f"u{i}"}, meta={"user": "u1" if i % 2 else "u2"})
            done_ids.append(run.id)
            await env.clock.advance(1)
        for id_ in done_ids:
            await scraper.wait_for(id_, timeout=10)
        waiting = await approval.start(meta={"user": "u1"})
        await env.settle()

        assert await engine.runs.count() == 8
        assert await engine.runs.count(workflow_id="web-scraper", status="done") == 7
        assert await engine.runs.count(status=["waiting", "running"]) == 1
        assert await engine.runs.count(meta={"user": "u1"}) == 4
        found = await engine.runs.find(workflow_id="approval", status=RunStatus.WAITING)
        assert [r.id for r in found.items] == [waiting.id]

        seen: list[str] = []
        cursor = None
        while True:
            page = await engine.runs.find(workflow_id="web-scraper", limit=3, cursor=cursor)
            seen.extend(r.id for r in page.items)
            assert len(page.items) <= 3
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == list(reversed(done_ids))  # newest first by default
        oldest = await engine.runs.find(workflow_id="web-scraper", sort="created_at", limit=2)
        assert [r.id for r in oldest.items] == done_ids[:2]
        t3 = (await engine.runs.get(done_ids[3])).created_at  # type: ignore[union-attr]
        assert await engine.runs.count(workflow_id="web-scraper", created_after=t3) == 4
        assert await engine.runs.count(workflow_id="web-scraper", created_before=t3) == 3
        with pytest.raises(ValidationError):
            await engine.runs.find(sort="name")
        with pytest.raises(ValidationError):
            await engine.runs.find(status="bogus")
        with pytest.raises(ValidationError):
            await engine.runs.find(cursor="%%%not-a-cursor")


async def test_context_filters(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow(
            "scraper", steps={"a": lambda ctx: 1}, context=lambda i: {"url": i["url"]}
        )
        for url in ("https://a", "https://b", "https://a"):
            await wf.wait_for((await wf.start({"url": url})).id, timeout=10)
        assert await engine.runs.count(context={"url": "https://a"}) == 2


async def test_delete_only_removes_old_finished_runs(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow("cleanup", steps={"a": lambda ctx: 1})
        approval = engine.workflow("approval", steps={"ask": ask})
        old = await wf.wait_for((await wf.start()).id, timeout=10)
        pending = await approval.start()
        await env.clock.advance(86400 * 31)
        recent = await wf.wait_for((await wf.start()).id, timeout=10)
        cutoff = env.clock.now() - timedelta(days=30)
        with pytest.raises(ValidationError):
            await engine.runs.delete(status="waiting", updated_before=cutoff)
        n = await engine.runs.delete(status=["done", "failed", "cancelled"], updated_before=cutoff)
        assert n == 1
        assert await engine.runs.get(old.id) is None
        assert await engine.runs.get(recent.id) is not None
        assert await engine.runs.get(pending.id) is not None


async def test_a_tenant_engine_sees_and_touches_only_its_tenant(env: Env) -> None:
    steps = {"ask": ask}
    acme = env.engine(tenant_id="acme")
    globex = env.engine(tenant_id="globex")
    await acme.start()
    await globex.start()
    a_wf = acme.workflow("approval", steps=steps)
    g_wf = globex.workflow("approval", steps=steps)
    a_run = await a_wf.start()
    g_run = await g_wf.start()
    await env.settle()
    assert a_run.tenant_id == "acme"
    assert await acme.runs.count() == 1
    assert await acme.runs.get(g_run.id) is None
    assert await a_wf.get(g_run.id) is None
    with pytest.raises(WorkflowNotFoundError):
        await a_wf.resume(g_run.id, "x")
    with pytest.raises(WorkflowNotFoundError):
        await a_wf.cancel(g_run.id)
    with pytest.raises(WorkflowNotFoundError):
        await acme.emit_event("e", run_id=g_run.id)
    with pytest.raises(ValidationError):
        await acme.runs.find(tenant_id="globex")
    await g_wf.resume(g_run.id, "ok")
    assert (await g_wf.wait_for(g_run.id, timeout=10)).status == RunStatus.DONE
    assert (await a_wf.get(a_run.id)).status == RunStatus.WAITING  # type: ignore[union-attr]


async def test_idempotency_keys_are_per_tenant(env: Env) -> None:
    client = env.engine()
    wf = client.workflow("pay", steps={"ask": ask})
    a = await wf.start(idempotency_key="k", tenant_id="acme")
    b = await wf.start(idempotency_key="k", tenant_id="globex")
    c = await wf.start(idempotency_key="k", tenant_id="acme")
    assert a.id != b.id
    assert c.id == a.id


async def test_admin_pause_unpause_and_rewind_through_engine_runs(env: Env) -> None:
    async def ask(ctx: StepContext) -> None:
        await ctx.wait("ok?")

    async with env.engine() as engine:
        wf = engine.workflow("admin", steps={"one": lambda ctx: 1, "ask": ask})
        run = await wf.start()
        await wf.wait_for(run.id, timeout=10, suspended=True)
        paused = await engine.runs.pause(run.id)
        assert paused.paused
        assert not (await engine.runs.unpause(run.id)).paused
        rewound = await engine.runs.rewind_to(run.id, "one")
        assert rewound.current_step_id == "one"
        again = await wf.wait_for(run.id, timeout=10, suspended=True)
        assert again.steps[0].attempts == 1 and again.status == RunStatus.WAITING


async def test_delete_by_run_ids_takes_only_the_named_finished_runs(env: Env) -> None:
    async def ask(ctx: StepContext) -> None:
        await ctx.wait("ok?")

    async with env.engine() as engine:
        quick = engine.workflow("quick", steps={"a": lambda ctx: 1})
        slow = engine.workflow("slow", steps={"ask": ask})
        first = await quick.wait_for((await quick.start()).id, timeout=10)
        second = await quick.wait_for((await quick.start()).id, timeout=10)
        active = await slow.start()
        await slow.wait_for(active.id, timeout=10, suspended=True)
        deleted = await engine.runs.delete(status="done", run_ids=[first.id, active.id])
        assert deleted == 1
        assert await engine.runs.get(first.id) is None
        assert await engine.runs.get(second.id) is not None
        assert await engine.runs.get(active.id) is not None
        with pytest.raises(ValidationError, match="updated_before or run_ids"):
            await engine.runs.delete(status="done")
        with pytest.raises(ValidationError, match="updated_before or run_ids"):
            await engine.runs.delete(status="done", run_ids=[])


async def test_filters_keep_booleans_apart_from_numbers(env: Env) -> None:
    async with env.engine() as engine:
        wf = engine.workflow(
            "flags", steps={"ask": ask}, context=lambda input: {"flag": input["flag"]}
        )
        ids = {}
        values = (("true", True), ("one", 1), ("float", 1.0), ("false", False), ("zero", 0))
        for name, value in values:
            ids[name] = (await wf.start({"flag": value}, meta={"flag": value})).id
        await env.settle()
        for field in ("meta", "context"):
            for value, expected in (
                (True, {"true"}),
                (False, {"false"}),
                (1, {"one", "float"}),
                (0, {"zero"}),
            ):
                page = await engine.runs.find(**{field: {"flag": value}})  # type: ignore[arg-type]
                assert {r.id for r in page.items} == {ids[n] for n in expected}, (field, value)
