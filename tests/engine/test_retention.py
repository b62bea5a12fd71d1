"""Retention: started workers delete finished runs past their age; archive hooks see them first."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from streamline_core import (
    Retention,
    RunStatus,
    StepConfig,
    StepContext,
    ValidationError,
    WorkflowRun,
)
from streamline_core.hooks import hookimpl
from tests.conftest import Env

DAY = 86_400.0


async def boom(ctx: StepContext) -> None:
    raise RuntimeError("no")


async def ask(ctx: StepContext) -> None:
    await ctx.wait("?")


class Archive:
    """An archive plugin that keeps every batch it is given (or refuses them)."""

    def __init__(self, refuse: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.refuse = refuse

    @hookimpl
    async def streamline_archive(self, runs: list[WorkflowRun]) -> None:
        if self.refuse:
            raise OSError("archive bucket unreachable")
        self.batches.append([r.id for r in runs])


async def finish(env: Env, engine: Any, count: int) -> dict[str, list[str]]:
    ok = engine.workflow("ok", steps={"a": lambda ctx: 1})
    bad = engine.workflow("bad", steps={"a": StepConfig(boom, retries=1)})
    waits = engine.workflow("waits", steps={"a": ask})
    ids: dict[str, list[str]] = {"done": [], "failed": [], "cancelled": [], "waiting": []}
    for _ in range(count):
        ids["done"].append((await ok.start()).id)
        ids["failed"].append((await bad.start()).id)
        ids["cancelled"].append((await waits.start()).id)
        ids["waiting"].append((await waits.start()).id)
    await env.settle()
    for run_id in ids["cancelled"]:
        await waits.cancel(run_id)
    for run_id in ids["done"]:
        await ok.wait_for(run_id, timeout=60)
    for run_id in ids["failed"]:
        await bad.wait_for(run_id, timeout=60)
    return ids


async def left(engine: Any, ids: list[str]) -> list[str]:
    return [i for i in ids if await engine.runs.get(i) is not None]


async def swept(env: Env, engine: Any, ids: list[str], every: float) -> list[str]:
    """``left`` once the sweeps have had their chance (a few intervals, under load)."""
    for _ in range(10):
        remaining = await left(engine, ids)
        if not remaining:
            return remaining
        await env.clock.advance(every)
        await env.settle()
    return await left(engine, ids)


async def test_a_started_worker_deletes_each_status_after_its_age(env: Env) -> None:
    archive = Archive()
    retention = Retention(done=timedelta(days=30), failed=90 * DAY, every=600, batch_size=2)
    async with env.engine(retention=retention, plugins=[archive]) as engine:
        ids = await finish(env, engine, 3)
        await env.clock.advance(29 * DAY)
        assert await left(engine, ids["done"]) == ids["done"]  # not old enough yet
        await env.clock.advance(2 * DAY)
        assert await swept(env, engine, ids["done"], 600) == []
        assert await left(engine, ids["failed"]) == ids["failed"]
        assert await left(engine, ids["cancelled"]) == ids["cancelled"]  # no age: kept
        assert await left(engine, ids["waiting"]) == ids["waiting"]  # active: never
        assert sorted(i for b in archive.batches for i in b) == sorted(ids["done"])
        assert all(len(b) <= 2 for b in archive.batches)
        await env.clock.advance(60 * DAY)
        assert await swept(env, engine, ids["failed"], 600) == []
        assert await left(engine, ids["waiting"]) == ids["waiting"]


async def test_an_archive_that_raises_keeps_its_batch_for_the_next_sweep(env: Env) -> None:
    archive = Archive(refuse=True)
    errors: list[Any] = []
    async with env.engine(retention=Retention(done=DAY, every=600), plugins=[archive]) as engine:
        engine.on("engine:error", errors.append)
        ids = await finish(env, engine, 2)
        await env.clock.advance(2 * DAY)
        await env.settle()
        assert await left(engine, ids["done"]) == ids["done"]
        assert errors and "archive bucket unreachable" in str(errors[-1].error)
        archive.refuse = False
        assert await swept(env, engine, ids["done"], 600) == []
        assert sorted(archive.batches[-1]) == sorted(ids["done"])


async def test_two_workers_sweeping_together_delete_every_run_once(env: Env) -> None:
    retention = Retention(done=DAY, every=60, batch_size=3)
    first = env.engine(retention=retention, worker_id="w1")
    second = env.engine(retention=retention, worker_id="w2")
    async with first, second:
        ids = await finish(env, first, 7)
        second.workflow("ok", steps={"a": lambda ctx: 1})
        await env.clock.advance(2 * DAY)
        assert await swept(env, first, ids["done"], 60) == []
        assert await first.runs.count(status="done") == 0


async def test_a_run_rewound_while_archived_is_not_deleted(env: Env) -> None:
    async with env.engine() as engine:
        ids = await finish(env, engine, 2)
        target = ids["failed"][0]
        bad = engine.get_workflow("bad")

        class Rewinder:
            @hookimpl
            async def streamline_archive(self, runs: list[WorkflowRun]) -> None:
                if any(r.id == target for r in runs):
                    await bad.rewind_to(target, "a")

        engine.plugins.register(Rewinder())
        await env.clock.advance(2 * DAY)
        assert await engine.runs.prune(status="failed", older_than=DAY) == 1
        # Rewound, it ran again (and failed again, just now): still there.
        assert await engine.runs.get(target) is not None


async def test_prune_counts_with_dry_run_then_deletes(env: Env) -> None:
    async with env.engine() as engine:
        ids = await finish(env, engine, 3)
        await env.clock.advance(10 * DAY)
        assert await engine.runs.prune(status="done", older_than=30 * DAY) == 0
        assert (
            await engine.runs.prune(status=["done", "cancelled"], older_than=DAY, dry_run=True) == 6
        )
        assert await left(engine, ids["done"]) == ids["done"]
        assert await engine.runs.prune(status=["done", "cancelled"], older_than=DAY) == 6
        assert await left(engine, ids["done"] + ids["cancelled"]) == []
        assert await left(engine, ids["failed"]) == ids["failed"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": "running", "older_than": DAY},
        {"status": "waiting", "older_than": DAY},
        {"status": [], "older_than": DAY},
        {"status": "bogus", "older_than": DAY},
        {"status": "done", "older_than": -1},
        {"status": "done", "older_than": "30d"},
    ],
)
async def test_prune_refuses_bad_input(env: Env, kwargs: dict[str, Any]) -> None:
    async with env.engine() as engine:
        await finish(env, engine, 1)
        before = await engine.runs.count()
        with pytest.raises(ValidationError):
            await engine.runs.prune(**kwargs)
        assert await engine.runs.count() == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"done": -1},
        {"failed": "30d"},
        {"every": 0},
        {"batch_size": 0},
        {"max_batches": True},
        {"cancelled": float("inf")},
    ],
)
def test_retention_refuses_bad_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Retention(**kwargs)


def test_engine_refuses_a_retention_that_is_not_one() -> None:
    from streamline_core import Engine
    from streamline_testing import InMemoryStore

    with pytest.raises(ValidationError):
        Engine(InMemoryStore(), retention={"done": 30}, load_entry_point_plugins=False)  # type: ignore[arg-type]
    assert RunStatus.DONE in Retention(done=1).ages()
