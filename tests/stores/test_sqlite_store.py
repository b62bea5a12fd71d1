"""SQLiteStore: the Store contract, group commit, multi-process safety, errors, lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import multiprocessing
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlite_helpers import T0, claim_all_in_process, make_run, use_inherited_store

import streamline_sqlite
from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    LeaseLostError,
    StoreUnavailableError,
    WorkflowError,
    WorkflowNotFoundError,
)
from streamline_core.run import RunStatus, StepState, StepStatus, WorkflowRun
from streamline_core.store import UNSET, RunQuery, Store
from streamline_sqlite import SQLiteStore, from_url
from streamline_sqlite import store as store_module
from streamline_sqlite._errors import translate
from streamline_sqlite._schema import SCHEMA_VERSION
from streamline_testing import InMemoryStore


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "runs.db")


def run_with_store(path: str, scenario: Callable[[SQLiteStore], Awaitable[None]]) -> None:
    async def main() -> None:
        store = SQLiteStore(path)
        try:
            await scenario(store)
        finally:
            await store.close()

    asyncio.run(main())


def created(path: str | Path) -> SQLiteStore:
    """A store whose file and schema exist (opening is otherwise lazy)."""
    store = SQLiteStore(path)
    store.open()
    return store


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_public_names_are_pinned_and_the_store_satisfies_the_protocol(db: str) -> None:
    assert streamline_sqlite.__all__ == ["SQLiteStore", "from_url"]
    store = SQLiteStore(db)
    assert isinstance(store, Store)
    asyncio.run(store.close())
    (entry,) = [
        e for e in importlib.metadata.entry_points(group="streamline.stores") if e.name == "sqlite"
    ]
    assert entry.load() is from_url


# --- claim ---------------------------------------------------------------------------


def test_claim_is_exclusive_while_the_lease_is_live_and_takeover_counts_a_recovery(
    db: str,
) -> None:
    async def scenario(store: SQLiteStore) -> None:
        running, _ = await store.create(make_run())
        waiting, _ = await store.create(make_run(status="waiting"))
        first = await store.claim("a", T0, 30, 10, {"wf"})
        assert {r.id for r in first} == {running.id, waiting.id}
        assert all(r.lease is not None and r.lease.owner == "a" for r in first)
        assert all(r.revision == 1 and r.recoveries == 0 for r in first)
        assert await store.claim("b", later(29.999), 30, 10, {"wf"}) == []
        taken = {r.id: r for r in await store.claim("b", later(30), 30, 10, {"wf"})}
        assert set(taken) == {running.id, waiting.id}
        # Only a running run was being executed by the dead worker.
        assert taken[running.id].recoveries == 1 and taken[waiting.id].recoveries == 0
        lease = taken[running.id].lease
        assert lease is not None and lease.owner == "b" and lease.expires_at == later(60)
        assert taken[running.id].revision == 2
        assert await store.get(running.id) == taken[running.id]

    run_with_store(db, scenario)


def test_claim_skips_terminal_paused_undue_unscheduled_and_foreign_runs(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        claimable = {(await store.create(make_run(status=s)))[0].id for s in ("draft", "running")}
        t1, _ = await store.create(make_run(status="waiting", tenant_id="t1"))
        claimable.add(t1.id)
        for never in (
            make_run(status="done"),
            make_run(status="failed"),
            make_run(status="cancelled"),
            make_run(paused=True),
            make_run(next_run_at=None),
        ):
            await store.create(never)
        undue, _ = await store.create(make_run(next_run_at=later(1)))
        other, _ = await store.create(make_run(workflow_id="other"))
        assert await store.claim("a", T0, 30, 10, []) == []
        assert await store.claim("a", T0, 30, 0, {"wf"}) == []
        assert await store.claim("a", T0, 30, 10, {"wf"}, tenant_id="t2") == []
        assert [r.id for r in await store.claim("a", T0, 30, 10, {"wf"}, tenant_id="t1")] == [t1.id]
        claimed = await store.claim("a", T0, 30, 10, {"wf", "missing"})
        assert {r.id for r in claimed} == claimable - {t1.id}
        # Later, only the run that has become due and the other workflow's run.
        later_claim = await store.claim("b", later(1), 30, 10, {"wf", "other"})
        assert {r.id for r in later_claim} == {undue.id, other.id}
        assert await store.claim("c", later(29), 30, 10, {"wf", "other"}) == []


def test_claim_orders_by_priority_then_due_time_then_id(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        specs = [(0, -5), (5, -1), (5, -3), (-1, -10), (0, -5), (5, -3)]
        runs = [
            (await store.create(make_run(priority=p, next_run_at=later(s))))[0] for p, s in specs
        ]
        expected = sorted(runs, key=lambda r: (-r.priority, r.next_run_at or T0, r.id))
        first = await store.claim("a", T0, 30, 4, {"wf"})
        rest = await store.claim("a", T0, 30, 4, {"wf"})
        assert [r.id for r in first + rest] == [r.id for r in expected]

    run_with_store(db, scenario)


def test_two_store_instances_on_one_file_claim_each_run_once(db: str) -> None:
    async def scenario() -> None:
        one, two = SQLiteStore(db), SQLiteStore(db)
        try:
            for _ in range(40):
                await one.create(make_run())

            async def drain(store: SQLiteStore, worker: str) -> list[str]:
                got: list[str] = []
                while batch := await store.claim(worker, T0, 3600, 2, {"wf"}):
                    got.extend(r.id for r in batch)
                return got

            results = await asyncio.gather(
                *(drain(s, f"w{i}") for i, s in enumerate((one, two, one, two)))
            )
            claimed = [run_id for ids in results for run_id in ids]
            assert len(claimed) == 40 and len(set(claimed)) == 40
        finally:
            await one.close()
            await two.close()

    asyncio.run(scenario())


def test_two_processes_on_one_file_claim_each_run_once(db: str) -> None:
    async def seed() -> set[str]:
        store = SQLiteStore(db)
        try:
            return {(await store.create(make_run()))[0].id for _ in range(200)}
        finally:
            await store.close()

    ids = asyncio.run(seed())
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=claim_all_in_process, args=(db, f"p{i}", start, results))
        for i in range(2)
    ]
    for proc in procs:
        proc.start()
    outcome = dict(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
    assert all(isinstance(v, list) for v in outcome.values()), outcome
    claimed = [run_id for got in outcome.values() for run_id in got]
    assert sorted(claimed) == sorted(ids)  # every run, each exactly once
    assert all(outcome.values())  # and the two processes really raced


def test_claim_uses_the_claimable_index(db: str) -> None:
    asyncio.run(created(db).close())
    with sqlite3.connect(db) as conn:
        params = ("w", 1, "{}", 1, '["wf"]', 10, "t")
        plans = [
            " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params[:n]))
            for (_, tenant), sql in store_module._CLAIMS.items()
            for n in (7 if tenant else 6,)
        ]
        key_plan = conn.execute(
            f"EXPLAIN QUERY PLAN {store_module._ACTIVE_BY_KEY}", ("wf", 1, "", "k")
        ).fetchall()
    # Walks the claim index in claim order and stops at the limit: no sort, and
    # no other table scan.
    assert all("SCAN runs USING INDEX runs_claimable" in p for p in plans), plans
    assert "TEMP B-TREE" not in " ".join(plans)
    assert all(p.count("SCAN runs") == 1 for p in plans), plans
    assert "USING INDEX runs_idempotency" in key_plan[0][3]


# --- transition and heartbeat ------------------------------------------------------


def test_transition_fences_stale_revisions_foreign_owners_and_unknown_runs(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        run, _ = await store.create(make_run())
        with pytest.raises(ConflictError):  # no lease at all
            await store.transition(run.id, run.revision, {"status": "done"}, owner="a")
        (claimed,) = await store.claim("a", T0, 30, 1, {"wf"})
        with pytest.raises(ConflictError):
            await store.transition(run.id, run.revision, {"status": "done"})
        with pytest.raises(ConflictError):
            await store.transition(run.id, claimed.revision, {"status": "done"}, owner="b")
        with pytest.raises(WorkflowNotFoundError):
            await store.transition("nope", 0, {"status": "done"})
        assert await store.get(run.id) == claimed  # nothing was written
        # An expired lease that nobody took over still belongs to its owner.
        done = await store.transition(
            run.id, claimed.revision, {"status": "done", "ended_at": later(99)}, owner="a"
        )
        assert done.status == RunStatus.DONE and done.revision == claimed.revision + 1
        assert done.ended_at == later(99)
        assert await store.get(run.id) == done

    run_with_store(db, scenario)


def test_transition_applies_patch_paths_and_unset(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        steps = [StepState(step_id="a"), StepState(step_id="b")]
        run, _ = await store.create(
            make_run(steps=steps, context={"keep": 1, "drop": 2}, meta={"m": "x"})
        )
        new = await store.transition(
            run.id,
            0,
            {
                "steps.0": {"step_id": "a", "status": "done", "attempts": 1, "output": [1, "é"]},
                "steps.1.status": "running",
                "steps.1.started_at": later(1),
                "context.drop": UNSET,
                "context.total": 10**30,
                "meta.user": {"n": None},
                "current_step_id": "b",
                "wait": {"kind": "event", "event": "paid", "hook_token_hash": "h"},
                "status": "waiting",
            },
        )
        assert new.steps[0].output == [1, "é"] and new.steps[1].status == "running"
        assert new.steps[1].started_at == later(1)
        assert new.context == {"keep": 1, "total": 10**30}
        assert new.meta == {"m": "x", "user": {"n": None}}
        assert await store.get(run.id) == new
        found = await store.find(RunQuery(waiting_for_event="paid"))
        assert [r.id for r in found.items] == [run.id]
        assert await store.count(RunQuery(hook_token_hash="h")) == 1

    run_with_store(db, scenario)


def test_a_patch_that_would_corrupt_the_run_writes_nothing(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        run, _ = await store.create(make_run(steps=[StepState(step_id="a")]))
        for bad in ({"status": "exploded"}, {"context.x": float("nan")}, {"priority": "high"}):
            with pytest.raises(DataCorruptionError):
                await store.transition(run.id, 0, bad)
        with pytest.raises(IndexError):  # the same error apply_patch gives InMemoryStore
            await store.transition(run.id, 0, {"steps.5.status": "done"})
        with pytest.raises(DataCorruptionError, match=r"lease\.owner"):  # {} made, owner missing
            await store.transition(run.id, 0, {"lease.expires_at": T0})
        with pytest.raises(KeyError, match="cannot set"):  # no key under a null
            await store.transition(run.id, 0, {"lease": None, "lease.owner": "a"})
        assert await store.get(run.id) == run

    run_with_store(db, scenario)


def test_heartbeat_extends_only_the_owners_lease_and_keeps_the_revision(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        run, _ = await store.create(make_run())
        with pytest.raises(LeaseLostError):  # no lease yet
            await store.heartbeat(run.id, "a", T0, 30)
        with pytest.raises(LeaseLostError):
            await store.heartbeat("nope", "a", T0, 30)
        (claimed,) = await store.claim("a", T0, 30, 1, {"wf"})
        assert await store.heartbeat(run.id, "a", later(20), 30) == RunStatus.RUNNING
        with pytest.raises(LeaseLostError):
            await store.heartbeat(run.id, "b", later(20), 30)
        beat = await store.get(run.id)
        assert beat is not None and beat.lease is not None
        assert beat.lease.expires_at == later(50) and beat.revision == claimed.revision
        # The extended lease is what claims see.
        assert await store.claim("b", later(49), 30, 1, {"wf"}) == []
        cancelled = await store.transition(run.id, claimed.revision, {"status": "cancelled"})
        assert await store.heartbeat(run.id, "a", later(21), 30) == RunStatus.CANCELLED
        after = await store.get(run.id)
        assert after is not None and after.revision == cancelled.revision

    run_with_store(db, scenario)


def test_revisions_strictly_increase(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        run, _ = await store.create(make_run())
        seen = [run.revision]
        now = T0
        for i in range(5):
            (claimed,) = await store.claim("a", now, 1, 1, {"wf"})
            seen.append(claimed.revision)
            moved = await store.transition(run.id, claimed.revision, {"context.i": i}, owner="a")
            seen.append(moved.revision)
            now += timedelta(seconds=2)
        assert seen == sorted(set(seen)) and seen == list(range(len(seen)))

    run_with_store(db, scenario)


# --- create --------------------------------------------------------------------------


def test_create_is_idempotent_per_workflow_tenant_and_key_among_active_runs(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        first, created = await store.create(make_run(idempotency_key="k"))
        assert created
        again, created = await store.create(make_run(idempotency_key="k"))
        assert not created and again == first
        assert (await store.create(make_run(idempotency_key="k", workflow_id="x")))[1]
        assert (await store.create(make_run(idempotency_key="k", tenant_id="t")))[1]
        assert (await store.create(make_run(idempotency_key="k", tenant_id="")))[1]
        assert not (await store.create(make_run(idempotency_key="k", tenant_id="")))[1]
        await store.transition(first.id, first.revision, {"status": "done"})
        fresh, created = await store.create(make_run(idempotency_key="k"))
        assert created and fresh.id != first.id
        with pytest.raises(ConflictError):
            await store.create(make_run(id=fresh.id))
        # Keys constrain create only: reviving a finished run is the engine's call.
        revived = await store.transition(first.id, first.revision + 1, {"status": "running"})
        assert revived.status == "running"

    run_with_store(db, scenario)


def test_ten_concurrent_creates_with_one_key_make_one_run(db: str) -> None:
    async def scenario() -> None:
        one, two = SQLiteStore(db), SQLiteStore(db)
        try:
            results = await asyncio.gather(
                *(
                    (one if i % 2 else two).create(make_run(idempotency_key="same"))
                    for i in range(10)
                )
            )
            assert sum(created for _, created in results) == 1
            assert len({run.id for run, _ in results}) == 1
            assert await one.count(RunQuery()) == 1
        finally:
            await one.close()
            await two.close()

    asyncio.run(scenario())


# --- find / count / delete -----------------------------------------------------------


def _dataset() -> list[WorkflowRun]:
    runs: list[WorkflowRun] = []
    flags: list[Any] = [True, 1, "1", 1.0, None, 0, False, [1], {"a": 1}, "x", 2**60, 2**60 + 1]
    statuses = ["draft", "running", "waiting", "done", "failed", "cancelled"]
    for i in range(36):
        meta: dict[str, Any] = {"i": i}
        if i % 13:
            meta["flag"] = flags[i % len(flags)]
        wait = None
        if statuses[i % 6] == "waiting":
            wait = {"kind": "event" if i % 4 else "human", "event": f"e{i % 3}"}
            if i % 5 == 0:
                wait["hook_token_hash"] = "hash"
        runs.append(
            make_run(
                workflow_id=("wf", "other")[i % 2],
                tenant_id=(None, "t1", "t2", "")[i % 4],
                status=statuses[i % 6],
                created_at=later(i // 3),  # ties broken by id
                updated_at=later(100 - i // 2),
                meta=meta,
                context={"k.dot": i % 2, "s": f"v{i % 3}", "n": flags[(i + 3) % len(flags)]},
                wait=wait,
            )
        )
    return runs


def _queries() -> list[RunQuery]:
    filters: list[dict[str, Any]] = [
        {},
        {"workflow_id": "wf"},
        {"workflow_id": ["wf", "other"]},
        {"workflow_id": []},
        {"status": "waiting"},
        {"status": ["done", "failed"]},
        {"tenant_id": "t1"},
        {"tenant_id": ""},
        {"meta": {"flag": True}},
        {"meta": {"flag": 1}},
        {"meta": {"flag": "1"}},
        {"meta": {"flag": None}},
        {"meta": {"flag": 0}},
        {"meta": {"flag": [1]}},
        {"meta": {"flag": {"a": 1}}},
        {"meta": {"flag": 2**60}},
        {"meta": {"flag": 2**60 + 1}},
        {"meta": {"flag": 1.0, "i": 3}},
        {"meta": {}},
        {"context": {"k.dot": 1}},
        {"context": {"s": "v2", "n": "x"}},
        {"context": {"missing": None}},
        {"created_after": later(3), "created_before": later(8)},
        {"updated_before": later(90)},
        {"waiting_for_event": "e1"},
        {"hook_token_hash": "hash"},
        {"workflow_id": "wf", "status": ["running", "waiting"], "tenant_id": "t2"},
    ]
    queries: list[RunQuery] = []
    for f in filters:
        for sort in ("created_at", "-created_at", "updated_at", "-updated_at"):
            queries.append(RunQuery(**f, sort=sort, limit=None))
    return queries


def test_find_count_and_delete_agree_with_the_in_memory_store(tmp_path: Path) -> None:
    async def scenario() -> None:
        memory = InMemoryStore()
        sqlite = SQLiteStore(tmp_path / "find.db")
        try:
            data = _dataset()
            ids = [r.id for r in data]
            for run in data:
                await memory.create(run)
                await sqlite.create(run)
            for query in _queries():
                expected = (await memory.find(query)).items
                assert [r.id for r in (await sqlite.find(query)).items] == [
                    r.id for r in expected
                ], query
                assert await sqlite.count(query) == await memory.count(query), query
                assert await sqlite.count(
                    RunQuery(run_ids=ids[:7], meta=query.meta, status=query.status)
                ) == await memory.count(
                    RunQuery(run_ids=ids[:7], meta=query.meta, status=query.status)
                )
                # Walk every page, with a page size that splits ties.
                for limit in (1, 4):
                    cursors: list[str | None] = [None]
                    walked: list[str] = []
                    while True:
                        q = _with(query, limit=limit, cursor=cursors[-1])
                        page, mpage = await sqlite.find(q), await memory.find(q)
                        assert [r.id for r in page.items] == [r.id for r in mpage.items], q
                        assert page.next_cursor == mpage.next_cursor
                        walked.extend(r.id for r in page.items)
                        if page.next_cursor is None:
                            break
                        cursors.append(page.next_cursor)
                    assert walked == [r.id for r in expected]
            for query in (
                RunQuery(meta={"flag": 1}),
                RunQuery(status=RunStatus.DONE, tenant_id="t1"),
                RunQuery(workflow_id="other", context={"s": "v1"}),
            ):
                assert await sqlite.delete(query) == await memory.delete(query) > 0
                everything = RunQuery(limit=None)
                assert [r.id for r in (await sqlite.find(everything)).items] == [
                    r.id for r in (await memory.find(everything)).items
                ]
            with pytest.raises(ValueError, match="cursor"):
                await sqlite.find(RunQuery(cursor="garbage!"))
        finally:
            await sqlite.close()

    asyncio.run(scenario())


def _with(query: RunQuery, **changes: Any) -> RunQuery:
    fields = {name: getattr(query, name) for name in RunQuery.__dataclass_fields__}
    fields.update(changes)
    return RunQuery(**fields)


# --- group commit --------------------------------------------------------------------


async def _hold_writer(store: SQLiteStore) -> tuple[threading.Event, asyncio.Task[Any]]:
    """Park the writer thread inside a job until the returned event is set."""
    entered, release = threading.Event(), threading.Event()

    def block(conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait(10)

    task = asyncio.create_task(store._writer.run(block, inline=False))
    while not entered.is_set():
        await asyncio.sleep(0.001)
    return release, task


@pytest.mark.parametrize("path", ["inline", "thread"])
def test_queued_writes_share_one_commit_and_fail_only_on_their_own(db: str, path: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        runs = [(await store.create(make_run()))[0] for _ in range(50)]
        claimed = {r.id: r for r in await store.claim("a", T0, 30, 50, {"wf"})}
        if path == "thread":  # the writer thread is busy: the batch queues for it
            release, blocker = await _hold_writer(store)
        batches, inline = store._writer.batches, store._writer.inline_batches
        good = [
            asyncio.create_task(store.transition(r.id, claimed[r.id].revision, {"context.x": 1}))
            for r in runs[1:-1]
        ]
        stale = asyncio.create_task(store.transition(runs[0].id, 0, {"context.x": 1}))
        foreign = asyncio.create_task(
            store.transition(runs[-1].id, claimed[runs[-1].id].revision, {}, owner="b")
        )
        missing = asyncio.create_task(store.transition("nope", 0, {}))
        created = asyncio.create_task(store.create(make_run()))
        if path == "thread":
            await asyncio.sleep(0.01)  # every task is queued behind the blocker
            release.set()
            await blocker
        results = await asyncio.gather(
            *good, stale, foreign, missing, created, return_exceptions=True
        )
        assert store._writer.batches == batches + 1  # the 54 writes: one transaction
        assert store._writer.inline_batches == inline + (path == "inline")
        assert all(isinstance(r, WorkflowRun) for r in results[:48])
        assert isinstance(results[48], ConflictError)
        assert isinstance(results[49], ConflictError)
        assert isinstance(results[50], WorkflowNotFoundError)
        assert isinstance(results[51], tuple) and results[51][1] is True
        for run in runs:
            stored = await store.get(run.id)
            assert stored is not None
            expect_moved = run not in (runs[0], runs[-1])
            assert stored.revision == claimed[run.id].revision + expect_moved
            assert stored.context == ({"x": 1} if expect_moved else {})

    run_with_store(db, scenario)


@pytest.mark.parametrize("path", ["inline", "thread"])
def test_a_lost_transaction_fails_every_write_of_its_batch(db: str, path: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        a, _ = await store.create(make_run())
        b, _ = await store.create(make_run())
        if path == "thread":
            release, blocker = await _hold_writer(store)

        def disk_failure(conn: sqlite3.Connection) -> None:
            conn.execute("ROLLBACK")  # what SQLite does on SQLITE_FULL / IOERR
            raise sqlite3.OperationalError("disk I/O error")

        first = asyncio.create_task(store.transition(a.id, 0, {"context.x": 1}))
        failing = asyncio.create_task(store._writer.run(disk_failure))
        after = asyncio.create_task(store.transition(b.id, 0, {"context.x": 1}))
        if path == "thread":
            await asyncio.sleep(0.01)
            release.set()
            await blocker
        results = await asyncio.gather(first, failing, after, return_exceptions=True)
        assert all(isinstance(r, StoreUnavailableError) for r in results), results
        assert await store.get(a.id) == a and await store.get(b.id) == b
        # The store carries on.
        assert (await store.transition(a.id, 0, {"context.x": 2})).context == {"x": 2}

    run_with_store(db, scenario)


def test_writes_of_one_loop_iteration_commit_together_inline(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        writer = store._writer
        runs = [(await store.create(make_run()))[0] for _ in range(20)]
        inline, batches = writer.inline_batches, writer.batches
        moved = await store.transition(runs[0].id, 0, {"context.x": 1})
        assert (writer.inline_batches, writer.batches) == (inline + 1, batches + 1)
        assert await store.get(runs[0].id) == moved
        # Writes issued in one loop iteration travel together: one transaction.
        inline, batches = writer.inline_batches, writer.batches
        await asyncio.gather(*(store.transition(r.id, 0, {"context.y": 2}) for r in runs[1:]))
        assert (writer.inline_batches, writer.batches) == (inline + 1, batches + 1)

    run_with_store(db, scenario)


@contextlib.contextmanager
def _write_lock_held_elsewhere(db: str) -> Iterator[None]:
    """Another connection (as another process would) holds the database's write lock."""
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_another_process_lock_never_blocks_the_event_loop(db: str) -> None:
    async def scenario() -> None:
        store = SQLiteStore(db, busy_timeout=5)
        run, _ = await store.create(make_run())
        ticks = 0
        with _write_lock_held_elsewhere(db):
            write = asyncio.create_task(store.transition(run.id, 0, {"context.x": 1}))
            while ticks < 20:  # the loop keeps turning while the write waits
                await asyncio.sleep(0.001)
                ticks += 1
            assert not write.done()
        assert (await write).context == {"x": 1}
        await store.close()

    asyncio.run(scenario())


def test_a_transition_returns_exactly_what_a_later_read_sees(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        run, _ = await store.create(make_run(steps=[{"step_id": "a"}]))
        at = datetime(2030, 5, 1, 12, 0, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
        patch = {
            "context.when": at,  # JSON data: stored as its ISO text
            "context.pair": (1, 2.5),
            "context.status": RunStatus.WAITING,
            "context.nested": {"a": [None, True, "x"]},
            "meta.big": 2**70,
            "updated_at": at,
            "steps.0.status": StepStatus.DONE,
            "lease": {"owner": "w", "expires_at": at},
        }
        moved = await store.transition(run.id, 0, patch)
        assert moved == await store.get(run.id)
        assert moved.context == {
            "when": at.isoformat(),
            "pair": [1, 2.5],
            "status": "waiting",
            "nested": {"a": [None, True, "x"]},
        }
        assert moved.updated_at == at and moved.steps[0].status == StepStatus.DONE
        assert moved.lease is not None and moved.lease.expires_at == at
        # A whole step: its datetime fields stay datetimes, its output is JSON data.
        step = {"step_id": "a", "status": "done", "ended_at": at, "output": {"at": at}}
        moved = await store.transition(run.id, 1, {"steps.0": step})
        assert moved == await store.get(run.id)
        assert moved.steps[0].ended_at == at and moved.steps[0].output == {"at": at.isoformat()}
        for bad in (float("nan"), {1, 2}, object(), {1: "x"}):
            with pytest.raises(DataCorruptionError, match="cannot be stored as JSON"):
                await store.transition(run.id, 2, {"context.bad": bad})
        assert await store.get(run.id) == moved
        # create: NaN refused, the text "NaN" kept, the run equal to a later read
        with pytest.raises(DataCorruptionError, match="cannot be stored as JSON"):
            await store.create(make_run(input={"x": float("inf")}))
        named, _ = await store.create(make_run(input={"name": "NaN", "at": at}))
        assert named == await store.get(named.id)
        assert named.input == {"name": "NaN", "at": at.isoformat()}

    run_with_store(db, scenario)


# --- durability, schema, errors ------------------------------------------------------


def test_acknowledged_writes_survive_close_and_reopen(db: str) -> None:
    async def scenario() -> None:
        store = SQLiteStore(db)
        run, _ = await store.create(
            make_run(
                created_at=datetime(
                    2030, 1, 1, 2, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))
                ),
                input={"unicode": "ünï€😀", "nested": [{"a": [1, 2.5, None, True]}]},
                idempotency_key="key",
            )
        )
        (claimed,) = await store.claim("a", T0, 30, 1, {"wf"})
        moved = await store.transition(run.id, claimed.revision, {"context.n": 2**70}, owner="a")
        await store.close()
        reopened = SQLiteStore(db)
        try:
            assert await reopened.get(run.id) == moved
            assert moved.created_at == T0.replace(microsecond=123456)
            assert (await reopened.create(make_run(idempotency_key="key")))[0].id == run.id
        finally:
            await reopened.close()

    asyncio.run(scenario())


def test_a_database_from_a_newer_schema_is_refused(db: str) -> None:
    asyncio.run(created(db).close())
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    threads = set(threading.enumerate())
    with pytest.raises(StoreUnavailableError) as info:
        SQLiteStore(db).open()
    assert f"schema version {SCHEMA_VERSION + 7}" in str(info.value)
    assert f"version {SCHEMA_VERSION} that" in str(info.value)
    assert set(threading.enumerate()) <= threads  # nothing left running


def test_an_sqlite_without_returning_is_refused(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    with pytest.raises(StoreUnavailableError, match=r"needs SQLite 3\.35\.0"):
        SQLiteStore(db).open()


def test_a_file_that_is_not_a_database_is_a_translated_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"definitely not SQLite " * 500)
    with pytest.raises(DataCorruptionError) as info:
        SQLiteStore(path).open()
    assert str(path) in str(info.value)
    assert not isinstance(info.value, sqlite3.Error)


def test_a_locked_database_is_store_unavailable(db: str) -> None:
    async def scenario() -> None:
        store = SQLiteStore(db, busy_timeout=0.05)
        run, _ = await store.create(make_run())
        with _write_lock_held_elsewhere(db):
            with pytest.raises(StoreUnavailableError, match="locked"):
                await store.transition(run.id, 0, {"context.x": 1})
            with pytest.raises(StoreUnavailableError):
                await store.claim("a", T0, 30, 1, {"wf"})
            assert await store.get(run.id) == run  # WAL: reads carry on
        assert (await store.transition(run.id, 0, {"context.x": 1})).revision == 1
        await store.close()

    asyncio.run(scenario())


def test_corrupt_documents_raise_data_corruption_and_stay_leased(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        bad_json, _ = await store.create(make_run())
        bad_run, _ = await store.create(make_run())
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE runs SET doc = '{not json' WHERE id = ?", (bad_json.id,))
            conn.execute("UPDATE runs SET doc = '{\"id\": 1}' WHERE id = ?", (bad_run.id,))
        for run_id in (bad_json.id, bad_run.id):
            with pytest.raises(DataCorruptionError):
                await store.get(run_id)
            with pytest.raises(DataCorruptionError):
                await store.transition(run_id, 0, {"context.x": 1})
        with pytest.raises(DataCorruptionError):
            await store.claim("a", T0, 30, 10, {"wf"})
        with pytest.raises(DataCorruptionError):
            await store.count(RunQuery(meta={"x": 1}))
        with sqlite3.connect(db) as conn:
            leased = conn.execute("SELECT count(*) FROM runs WHERE lease_owner IS NOT NULL")
            assert leased.fetchone()[0] == 2  # both stay leased, so no worker spins on them
        assert await store.claim("b", T0, 30, 10, {"wf"}) == []

    run_with_store(db, scenario)


@pytest.mark.parametrize("versioned", [False, True])
def test_a_document_that_is_not_json_does_not_stop_the_claim(db: str, versioned: bool) -> None:
    """Issue #16: json_set over '{not json' used to fail the whole UPDATE, forever."""
    workflows: Any = {"wf": ["1"]} if versioned else {"wf"}

    async def scenario(store: SQLiteStore) -> None:
        bad, _ = await store.create(make_run(priority=5, workflow_version="1"))
        good = [(await store.create(make_run(workflow_version="1")))[0] for _ in range(2)]
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE runs SET doc = '{not json' WHERE id = ?", (bad.id,))
        if versioned:  # no version can be read from it: a versioned claim passes it by
            claimed = await store.claim("a", T0, 30, 10, workflows)
        else:
            with pytest.raises(DataCorruptionError) as err:
                await store.claim("a", T0, 30, 10, workflows)
            assert err.value.run_id == bad.id
            assert bad.id in str(err.value)
            claimed = err.value.claimed
        assert sorted(r.id for r in claimed) == sorted(r.id for r in good)
        for run in claimed:
            assert run.lease is not None and run.lease.owner == "a" and run.revision == 1
            assert await store.get(run.id) == run
        # Nothing is claimed twice, and later runs are still claimed.
        assert await store.claim("b", T0, 30, 10, workflows) == []
        fresh, _ = await store.create(make_run(workflow_version="1"))
        assert [r.id for r in await store.claim("b", T0, 30, 10, workflows)] == [fresh.id]

    run_with_store(db, scenario)


def test_a_claim_keeps_valid_runs_and_reports_an_invalid_document(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        bad, _ = await store.create(make_run(priority=5))
        good, _ = await store.create(make_run())
        with sqlite3.connect(db) as conn:
            conn.execute(
                "UPDATE runs SET doc = json_set(doc, '$.steps', 'garbage') WHERE id = ?",
                (bad.id,),
            )
        with pytest.raises(DataCorruptionError) as err:
            await store.claim("a", T0, 30, 10, {"wf"})
        assert err.value.run_id == bad.id
        assert [r.id for r in err.value.claimed] == [good.id]
        # the corrupt run stays leased, so no worker spins on it until the lease expires
        assert await store.claim("b", T0, 30, 10, {"wf"}) == []

    run_with_store(db, scenario)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (sqlite3.OperationalError("database is locked"), StoreUnavailableError),
        (sqlite3.OperationalError("disk I/O error"), StoreUnavailableError),
        (sqlite3.IntegrityError("UNIQUE constraint failed: runs.id"), ConflictError),
        (sqlite3.DatabaseError("database disk image is malformed"), DataCorruptionError),
        (sqlite3.DatabaseError("file is not a database"), DataCorruptionError),
        (sqlite3.OperationalError("malformed JSON"), DataCorruptionError),
        (sqlite3.ProgrammingError("Cannot operate on a closed database."), StoreUnavailableError),
    ],
)
def test_translate_maps_sqlite_errors(error: sqlite3.Error, expected: type[WorkflowError]) -> None:
    translated = translate(error)
    assert type(translated) is expected and str(error) in str(translated)


# --- lifecycle and URLs ---------------------------------------------------------------


def test_threads_are_daemons_and_gone_after_close_which_is_idempotent(db: str) -> None:
    async def scenario() -> None:
        before = set(threading.enumerate())
        store = created(db)
        mine = [t for t in threading.enumerate() if t not in before]
        assert len(mine) == 2 and all(t.daemon for t in mine)
        await store.create(make_run())
        await store.close()
        await store.close()
        assert not any(t.is_alive() for t in mine)
        with pytest.raises(StoreUnavailableError, match="closed"):
            await store.get("x")
        with pytest.raises(StoreUnavailableError, match="closed"):
            await store.create(make_run())

    existing = set(threading.enumerate())
    asyncio.run(scenario())
    assert [t for t in threading.enumerate() if t not in existing and not t.daemon] == []


def test_a_store_inherited_through_fork_fails_instead_of_hanging(db: str) -> None:
    store = created(db)
    try:
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        child = ctx.Process(target=use_inherited_store, args=(store, results))
        child.start()
        outcome = results.get(timeout=30)
        child.join(timeout=10)
        assert outcome.startswith("StoreUnavailableError") and "another process" in outcome
    finally:
        asyncio.run(store.close())


def test_an_unclosed_store_ends_its_threads_when_collected(db: str) -> None:
    before = set(threading.enumerate())
    store = created(db)
    mine = [t for t in threading.enumerate() if t not in before]
    assert mine
    del store
    gc.collect()
    for thread in mine:
        thread.join(timeout=5)
    assert not any(t.is_alive() for t in mine)


def test_in_memory_store_uses_one_thread_and_works(tmp_path: Path) -> None:
    async def scenario() -> None:
        before = set(threading.enumerate())
        store = from_url("sqlite://:memory:")
        store.open()
        assert len(set(threading.enumerate()) - before) == 1
        run, _ = await store.create(make_run(idempotency_key="k"))
        (claimed,) = await store.claim("a", T0, 30, 1, {"wf"})
        assert await store.get(run.id) == claimed
        assert (await store.find(RunQuery())).items == [claimed]
        assert await store.delete(RunQuery(run_ids=[run.id])) == 1
        await store.close()

    asyncio.run(scenario())


def test_from_url_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    async def scenario() -> None:
        relative = from_url("sqlite:///nested/dir/rel.db?synchronous=NORMAL&busy_timeout=1")
        absolute = from_url(f"sqlite:///{tmp_path}/abs/dir/abs.db")
        memory = from_url("sqlite:///:memory:")
        assert not (tmp_path / "nested").exists()  # opened lazily, on first use
        for store in (relative, absolute, memory):
            await store.count(RunQuery())
        assert relative.path == "nested/dir/rel.db" and (tmp_path / "nested/dir/rel.db").exists()
        assert absolute.path == f"{tmp_path}/abs/dir/abs.db"
        assert (tmp_path / "abs/dir/abs.db").exists()
        assert memory.path == ":memory:"
        for store in (relative, absolute, memory):
            await store.close()

    asyncio.run(scenario())
    for bad in (
        "mongodb://x",
        "sqlite://",
        "sqlite:///",
        "sqlite://rel.db",
        "sqlite:///x.db?bogus=1",
        "sqlite:///x.db?synchronous=SOMETIMES",
        "sqlite:///x.db?busy_timeout=soon",
        "sqlite:///x.db?commit_on_loop=maybe",
    ):
        with pytest.raises(ValueError):
            from_url(bad)


def test_commit_on_loop_false_sends_every_batch_to_the_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    async def scenario() -> None:
        store = from_url("sqlite:///threaded.db?commit_on_loop=false")
        try:
            run, _ = await store.create(make_run())
            moved = await store.transition(run.id, 0, {"context.x": 1})
            await asyncio.gather(*(store.create(make_run()) for _ in range(5)))
            assert moved == await store.get(run.id)
            assert store._writer.batches == 3 and store._writer.inline_batches == 0
        finally:
            await store.close()

    asyncio.run(scenario())


def test_datetimes_keep_microseconds_and_sort_by_instant(db: str) -> None:
    async def scenario(store: SQLiteStore) -> None:
        plus_two = timezone(timedelta(hours=2))
        early = make_run(created_at=datetime(2030, 1, 1, 1, 0, 0, 1, tzinfo=plus_two))  # 23:00Z
        late = make_run(created_at=datetime(2030, 1, 1, 0, 0, 0, 2, tzinfo=UTC))
        for run in (late, early):
            await store.create(run)
        page = await store.find(RunQuery(sort="created_at"))
        assert [r.id for r in page.items] == [early.id, late.id]
        assert page.items[0].created_at == early.created_at
        assert page.items[0].created_at.microsecond == 1

    run_with_store(db, scenario)


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    from streamline_sqlite import _schema

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for statement in _schema._V1:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
    conn.close()

    async def scenario() -> None:
        store = SQLiteStore(str(path))
        _, created = await store.create(make_run(idempotency_key="k"))
        assert created
        await store.close()

    asyncio.run(scenario())
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == _schema.SCHEMA_VERSION
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'runs_idempotency'"
        ).fetchone()
        assert "UNIQUE" not in sql
    conn.close()
