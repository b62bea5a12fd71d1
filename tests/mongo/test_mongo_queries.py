"""find/count/delete agree with the in-memory store, the reference model."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from mongo_support import T0, make_run

from streamline_core.run import WorkflowRun
from streamline_core.store import RunQuery
from streamline_testing import InMemoryStore


def _population() -> list[WorkflowRun]:
    rng = random.Random(7)
    runs = []
    for i in range(40):
        status = rng.choice(["draft", "running", "waiting", "done", "failed", "cancelled"])
        wait = None
        if status == "waiting":
            wait = rng.choice(
                [
                    {"kind": "event", "event": rng.choice(["paid", "shipped"])},
                    {"kind": "human", "reason": "approve", "hook_token_hash": f"h{i % 3}"},
                    {"kind": "timer", "until": T0},
                ]
            )
        runs.append(
            make_run(
                # Few distinct created_at values, so ties are broken by id.
                created_at=T0 + timedelta(seconds=rng.randrange(5)),
                updated_at=T0 + timedelta(minutes=rng.randrange(10)),
                workflow_id=rng.choice(["wf", "scraper", "mailer"]),
                tenant_id=rng.choice([None, "t1", "t2"]),
                status=status,
                wait=wait,
                meta={"user": rng.choice(["u1", "u2"]), "n": rng.randrange(3)},
                context={"url": rng.choice(["https://a", "https://b"])},
            )
        )
    return runs


QUERIES = [
    RunQuery(limit=None),
    RunQuery(workflow_id="scraper", limit=None),
    RunQuery(workflow_id=["scraper", "mailer"], status=["running", "waiting"], limit=None),
    RunQuery(status="done", limit=None),
    RunQuery(tenant_id="t1", limit=None),
    RunQuery(meta={"user": "u1", "n": 2}, limit=None),
    RunQuery(context={"url": "https://a"}, workflow_id="wf", limit=None),
    RunQuery(meta={"absent": "x"}, limit=None),
    RunQuery(created_after=T0 + timedelta(seconds=2), limit=None),
    RunQuery(created_before=T0 + timedelta(seconds=2), limit=None),
    RunQuery(
        created_after=T0 + timedelta(seconds=1),
        created_before=T0 + timedelta(seconds=4),
        limit=None,
    ),
    RunQuery(updated_before=T0 + timedelta(minutes=4), status="done", limit=None),
    RunQuery(waiting_for_event="paid", limit=None),
    RunQuery(waiting_for_event="paid", status="done", limit=None),
    RunQuery(hook_token_hash="h1", limit=None),
    RunQuery(sort="created_at", limit=None),
    RunQuery(sort="updated_at", limit=None),
    RunQuery(sort="-updated_at", tenant_id="t2", limit=None),
]


async def _fill(store, runs: list[WorkflowRun]) -> None:
    for run in runs:
        await store.create(run)


@pytest.mark.parametrize("query", QUERIES, ids=range(len(QUERIES)))
def test_find_and_count_match_the_reference(mongo_store, query: RunQuery) -> None:
    async def scenario() -> None:
        runs = _population()
        reference = InMemoryStore()
        await _fill(reference, runs)
        async with mongo_store() as store:
            await _fill(store, runs)
            expected = await reference.find(query)
            got = await store.find(query)
            assert [r.id for r in got.items] == [r.id for r in expected.items]
            assert got.items == expected.items
            assert await store.count(query) == await reference.count(query)

    asyncio.run(scenario())


def test_run_ids_filter(mongo_store) -> None:
    async def scenario() -> None:
        runs = _population()
        async with mongo_store() as store:
            await _fill(store, runs)
            wanted = [runs[3].id, runs[17].id, "missing"]
            page = await store.find(RunQuery(run_ids=wanted, sort="created_at", limit=None))
            assert {r.id for r in page.items} == {runs[3].id, runs[17].id}

    asyncio.run(scenario())


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "-updated_at", "updated_at"])
def test_cursor_pagination_walks_every_run_once_in_order(mongo_store, sort) -> None:
    async def scenario() -> None:
        runs = _population()
        reference = InMemoryStore()
        await _fill(reference, runs)
        async with mongo_store() as store:
            await _fill(store, runs)
            base = RunQuery(sort=sort, status=["running", "waiting", "done"], limit=4)
            everything = await reference.find(RunQuery(sort=sort, status=base.status, limit=None))
            pages: list[list[str]] = []
            cursor = None
            while True:
                query = RunQuery(sort=sort, status=base.status, limit=4, cursor=cursor)
                page = await store.find(query)
                ref_page = await reference.find(query)
                assert [r.id for r in page.items] == [r.id for r in ref_page.items]
                assert page.next_cursor == ref_page.next_cursor
                pages.append([r.id for r in page.items])
                cursor = page.next_cursor
                if cursor is None:
                    break
            walked = [run_id for page in pages for run_id in page]
            assert walked == [r.id for r in everything.items]
            assert all(len(p) == 4 for p in pages[:-1])

    asyncio.run(scenario())


def test_exact_page_boundary_has_no_next_cursor(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            for _ in range(4):
                await store.create(make_run())
            page = await store.find(RunQuery(limit=4))
            assert len(page.items) == 4 and page.next_cursor is None
            first = await store.find(RunQuery(limit=3))
            assert first.next_cursor is not None
            rest = await store.find(RunQuery(limit=3, cursor=first.next_cursor))
            assert len(rest.items) == 1 and rest.next_cursor is None
            assert (await store.find(RunQuery(limit=0))).items == []

    asyncio.run(scenario())


def test_a_malformed_cursor_is_a_value_error(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            with pytest.raises(ValueError, match="cursor"):
                await store.find(RunQuery(cursor="%%%not-a-cursor"))

    asyncio.run(scenario())


def test_delete_matches_the_reference(mongo_store) -> None:
    async def scenario() -> None:
        runs = _population()
        reference = InMemoryStore()
        await _fill(reference, runs)
        query = RunQuery(status=["done", "failed"], updated_before=T0 + timedelta(minutes=5))
        async with mongo_store() as store:
            await _fill(store, runs)
            assert await store.delete(query) == await reference.delete(query)
            left = await store.find(RunQuery(limit=None))
            assert left.items == (await reference.find(RunQuery(limit=None))).items

    asyncio.run(scenario())
