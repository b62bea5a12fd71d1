"""``StoreContract``: one example-based test per clause of the Store contract.

Each test's docstring names the clause of ``streamline_core.store``'s module
docstring it checks. Mix a harness into it and plain pytest collects it::

    class TestMyStore(MyStoreHarness, StoreContract):
        pass

The same methods run without pytest: the runner (``streamline-conformance``)
instantiates the class and calls each clause method, which drives its own
event loop. A clause that does not apply to a harness (the second-handle
clause without ``Capabilities.second_handle``) raises ``unittest.SkipTest``,
which pytest reports as a skip.

Every store call goes through a guard that fails the clause when an exception
from outside ``streamline_core.errors`` escapes, whichever clause is running.
"""

from __future__ import annotations

import asyncio
import unittest
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any, TypeVar

from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    LeaseLostError,
    WorkflowError,
    WorkflowNotFoundError,
)
from streamline_core.run import RunStatus, WorkflowRun
from streamline_core.store import UNSET, RunQuery, SortKey
from streamline_testing.conformance._clauses import Stores, clause, clause_names
from streamline_testing.conformance._model import ordered
from streamline_testing.conformance._support import (
    LEASE,
    T0,
    GuardedStore,
    at,
    diff_docs,
    make_doc,
    non_utc_datetime,
    observe,
    step_doc,
)
from streamline_testing.conformance.harness import StoreHarness
from streamline_testing.conformance.limits import FlowControlClauses

__all__ = ["StoreContract", "clause_names"]

_E = TypeVar("_E", bound=WorkflowError)

# -- small helpers -----------------------------------------------------------------


def _run(run_id: str, **fields: Any) -> WorkflowRun:
    return WorkflowRun.model_validate(make_doc(run_id, **fields))


async def _put(store: GuardedStore, run_id: str, **fields: Any) -> WorkflowRun:
    run, created = await store.create(_run(run_id, **fields))
    assert created, f"create({run_id!r}) of a new id without a key returned created=False"
    return run


async def _raises(kind: type[_E], call: Awaitable[object], what: str) -> _E:
    try:
        result = await call
    except kind as exc:
        return exc
    except WorkflowError as exc:
        raise AssertionError(
            f"{what} raised {type(exc).__name__} ({exc}); the contract says {kind.__name__}"
        ) from exc
    raise AssertionError(f"{what} succeeded ({_short(result)}); the contract says {kind.__name__}")


def _short(value: object) -> str:
    if isinstance(value, WorkflowRun):
        owner = value.lease.owner if value.lease else None
        return f"run {value.id} revision {value.revision} lease {owner!r}"
    return repr(value)


def _ids(runs: Sequence[WorkflowRun]) -> list[str]:
    return [r.id for r in runs]


def _check(actual: WorkflowRun | None, expected: dict[str, Any], what: str) -> None:
    assert actual is not None, f"{what}: the run is gone"
    got = observe(actual)
    assert got == expected, f"{what}: {diff_docs(expected, got)}"


async def _stored(store: GuardedStore, expected: dict[str, Any], what: str) -> None:
    _check(await store.get(expected["id"]), expected, f"{what}, then get()")


async def _unchanged(store: GuardedStore, before: WorkflowRun, what: str) -> None:
    await _stored(store, observe(before), f"after a refused {what} the stored run changed")


def _lease(owner: str, expires_at_seconds: float) -> dict[str, Any]:
    return {"owner": owner, "expires_at": at(expires_at_seconds)}


_QUERY_RUNS: dict[str, dict[str, Any]] = {
    "q1": {
        "workflow_id": "wf-a",
        "meta": {"user": "u1"},
        "context": {"tier": "gold", "n": 1},
        "created_at": at(0),
        "updated_at": at(100),
    },
    "q2": {
        "workflow_id": "wf-a",
        "tenant_id": "t1",
        "status": "waiting",
        "wait": {
            "kind": "event",
            "reason": None,
            "data": None,
            "event": "paid",
            "until": None,
            "hook_token_hash": None,
        },
        "meta": {"user": "u2"},
        "context": {"tier": "free"},
        "created_at": at(10),
        "updated_at": at(50),
    },
    "q3": {
        "workflow_id": "wf-b",
        "tenant_id": "t1",
        "status": "waiting",
        "wait": {
            "kind": "human",
            "reason": "approve",
            "data": None,
            "event": None,
            "until": None,
            "hook_token_hash": "h-1",
        },
        "idempotency_key": "order-7",
        "created_at": at(20),
        "updated_at": at(20),
    },
    "q4": {
        "workflow_id": "wf-b",
        "tenant_id": "t2",
        "status": "done",
        "meta": {"user": "u1", "team": "x"},
        "created_at": at(30),
        "updated_at": at(30),
        "ended_at": at(30),
    },
    "q5": {
        "workflow_id": "wf-c",
        "parent_run_id": "q1",
        "parent_step_id": "s0",
        "status": "failed",
        "context": {"tier": "gold"},
        "created_at": at(40),
        "updated_at": at(200),
        "ended_at": at(200),
    },
    "q6": {
        "workflow_id": "wf-a",
        "tenant_id": "t2",
        "status": "cancelled",
        "created_at": at(50),
        "updated_at": at(60),
        "ended_at": at(60),
    },
    "q7": {
        "workflow_id": "wf-c",
        "parent_run_id": "q1",
        "parent_step_id": "s1",
        "detached": True,
        "status": "waiting",
        "wait": {
            "kind": "event",
            "reason": None,
            "data": None,
            "event": "shipped",
            "until": None,
            "hook_token_hash": None,
        },
        "created_at": at(60),
        "updated_at": at(60),
    },
    "q8": {
        # Carries an event wait but is not waiting: waiting_for_event must skip it.
        "workflow_id": "wf-a",
        "status": "draft",
        "wait": {
            "kind": "event",
            "reason": None,
            "data": None,
            "event": "paid",
            "until": None,
            "hook_token_hash": None,
        },
        "created_at": at(70),
        "updated_at": at(70),
    },
}

_W = RunStatus.WAITING
# (query, the ids it must select) — one or more per RunQuery filter field.
_FILTER_CASES: list[tuple[str, RunQuery, set[str]]] = [
    ("workflow_id=str", RunQuery(workflow_id="wf-a"), {"q1", "q2", "q6", "q8"}),
    ("workflow_id=list", RunQuery(workflow_id=["wf-b", "wf-c"]), {"q3", "q4", "q5", "q7"}),
    ("workflow_id=[]", RunQuery(workflow_id=[]), set()),
    ("status=[]", RunQuery(status=[]), set()),
    ("status=one", RunQuery(status=_W), {"q2", "q3", "q7"}),
    ("status=list", RunQuery(status=[RunStatus.DONE, RunStatus.FAILED]), {"q4", "q5"}),
    ("tenant_id", RunQuery(tenant_id="t1"), {"q2", "q3"}),
    ("run_ids", RunQuery(run_ids=["q1", "q4", "nope"]), {"q1", "q4"}),
    ("run_ids=[]", RunQuery(run_ids=[]), set()),
    ("meta", RunQuery(meta={"user": "u1"}), {"q1", "q4"}),
    ("meta=two keys", RunQuery(meta={"user": "u1", "team": "x"}), {"q4"}),
    ("context", RunQuery(context={"tier": "gold"}), {"q1", "q5"}),
    ("context=int", RunQuery(context={"n": 1}), {"q1"}),
    ("created_after (inclusive)", RunQuery(created_after=at(30)), {"q4", "q5", "q6", "q7", "q8"}),
    ("created_before (exclusive)", RunQuery(created_before=at(30)), {"q1", "q2", "q3"}),
    (
        "created range",
        RunQuery(created_after=at(10), created_before=at(40)),
        {"q2", "q3", "q4"},
    ),
    ("updated_before (exclusive)", RunQuery(updated_before=at(50)), {"q3", "q4"}),
    ("waiting_for_event", RunQuery(waiting_for_event="paid"), {"q2"}),
    ("hook_token_hash", RunQuery(hook_token_hash="h-1"), {"q3"}),
    ("idempotency_key", RunQuery(idempotency_key="order-7"), {"q3"}),
    ("parent_run_id", RunQuery(parent_run_id="q1"), {"q5", "q7"}),
    ("parent_run_id=no children", RunQuery(parent_run_id="q5"), set()),
    (
        "parent_run_id and status",
        RunQuery(parent_run_id="q1", status=[_W, RunStatus.DRAFT]),
        {"q7"},
    ),
    (
        "filters AND together",
        RunQuery(workflow_id="wf-a", status=[_W, RunStatus.DRAFT], tenant_id="t1"),
        {"q2"},
    ),
    ("no filter", RunQuery(), set(_QUERY_RUNS)),
]


async def _seed_query_runs(store: GuardedStore) -> None:
    # Inserted out of id order so that nothing passes by insertion order.
    for run_id in ("q5", "q2", "q8", "q1", "q7", "q3", "q6", "q4"):
        await _put(store, run_id, **_QUERY_RUNS[run_id])


async def _all_pages(store: GuardedStore, query: RunQuery, what: str) -> list[list[str]]:
    """Follow ``next_cursor`` to the end; the ids of each page."""
    pages: list[list[str]] = []
    cursor: str | None = None
    for _ in range(100):
        page = await store.find(
            RunQuery(**{**_fields(query), "cursor": cursor})  # same query, next page
        )
        ids = _ids(page.items)
        if query.limit is not None:
            assert len(ids) <= query.limit, f"{what}: a page of {len(ids)} > limit {query.limit}"
        pages.append(ids)
        cursor = page.next_cursor
        if cursor is None:
            return pages
        assert ids, f"{what}: an empty page still returned a next_cursor"
    raise AssertionError(f"{what}: pagination did not end after 100 pages")


def _fields(query: RunQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in RunQuery.__dataclass_fields__}


# -- the contract ----------------------------------------------------------------


class StoreContract(FlowControlClauses, StoreHarness):
    """Example-based conformance tests, one per clause of the Store contract.

    Mix your harness in front of it (``class TestMyStore(MyHarness,
    StoreContract)``). Every ``test_*`` method is a plain synchronous method
    that makes a fresh store, drives it on its own event loop and disposes
    of it, so the class runs under plain pytest (no asyncio plugin), under
    unittest-style runners, and under ``streamline-conformance``.
    """

    # -- create and get -------------------------------------------------------------

    @clause
    async def test_create_stores_the_run_as_given(self, stores: Stores) -> None:
        """create: inserts the run as given and get() returns every field unchanged.

        Clause "Documents" and "create": ``create`` returns ``(run, True)``; every
        field round-trips, datetimes aware and to the millisecond.
        """
        store = stores.main
        doc = make_doc(
            "run-full",
            workflow_id="orders",
            workflow_version="2.1",
            tenant_id="acme",
            parent_run_id="run-parent",
            parent_step_id="s0",
            detached=True,
            status="waiting",
            current_step_id="s1",
            steps=[
                step_doc(
                    "s0",
                    "done",
                    attempts=2,
                    started_at=at(0.001),
                    ended_at=at(1.5),
                    output={"rows": [1, 2, 3], "ok": True, "none": None},
                ),
                step_doc(
                    "s1",
                    "waiting",
                    attempts=1,
                    started_at=at(2.25),
                    error={"code": "X", "message": "earlier", "step_id": "s1", "details": {}},
                    wait={
                        "kind": "human",
                        "reason": "approve",
                        "data": None,
                        "event": None,
                        "until": None,
                        "hook_token_hash": None,
                    },
                ),
            ],
            context={"url": "https://example.test/a?b=c", "nested": {"k": [1, {"x": None}]}},
            input={"n": 1.5, "tags": ["a", "b"], "text": "héllo ✓"},
            error={"code": "STEP_FAILED", "message": "m", "step_id": "s0", "details": {"n": 1}},
            wait={
                "kind": "human",
                "reason": "approve",
                "data": {"amount": 10},
                "event": None,
                "until": at(3600.123),
                "hook_token_hash": "ab" * 32,
            },
            mailbox=[{"name": "paid", "data": {"v": 1}, "at": at(5.5)}],
            next_run_at=at(3600.123),
            priority=3,
            lease=_lease("worker-1", 30.25),
            recoveries=1,
            idempotency_key="key-1",
            meta={"user": "u1", "source": "api"},
            created_at=at(0.123),
            updated_at=at(2.5),
        )
        created, flag = await store.create(WorkflowRun.model_validate(doc))
        assert flag is True, "create() of a new run returned created=False"
        _check(created, doc, "create() returned")
        await _stored(store, doc, "create()")

        plain = make_doc("run-plain", status="draft", next_run_at=None)
        created, flag = await store.create(WorkflowRun.model_validate(plain))
        assert flag is True, "create() of a new run returned created=False"
        _check(created, plain, "create() returned")
        await _stored(store, plain, "create()")

    @clause
    async def test_get_unknown_run_returns_none(self, stores: Stores) -> None:
        """get: an id that was never stored gives None (on an empty and a non-empty store)."""
        store = stores.main
        assert await store.get("no-such-run") is None, "get() of an unknown id on an empty store"
        await _put(store, "run-1")
        assert await store.get("no-such-run") is None, "get() of an unknown id"
        assert await store.get("run-") is None, "get() of a prefix of a stored id"

    @clause
    async def test_create_existing_id_raises_conflict(self, stores: Stores) -> None:
        """create: creating an id that already exists raises ConflictError and changes nothing."""
        store = stores.main
        first = await _put(store, "run-1", context={"v": 1})
        await _raises(
            ConflictError,
            store.create(_run("run-1", context={"v": 2}, workflow_id="other")),
            "create() of an existing id",
        )
        await _unchanged(store, first, "create()")
        total = await store.count(RunQuery())
        assert total == 1, f"after a refused create() the store holds {total} runs, not 1"

    @clause
    async def test_create_with_active_idempotency_key_returns_existing_run(
        self, stores: Stores
    ) -> None:
        """create: an active run with the same (workflow, tenant, key) is returned, created=False.

        Terminal runs do not hold their key; other workflows and tenants have their own keys.
        """
        store = stores.main
        first = await _put(store, "run-a", idempotency_key="k", status="draft")
        again, created = await store.create(_run("run-b", idempotency_key="k"))
        assert created is False, "a second create() with an active key returned created=True"
        _check(again, observe(first), "create() with an active key returned")
        assert await store.get("run-b") is None, "create() with an active key inserted a run"

        # Same key, another workflow or tenant: a different scope.
        await _put(store, "run-c", idempotency_key="k", workflow_id="other")
        await _put(store, "run-d", idempotency_key="k", tenant_id="t1")
        again, created = await store.create(_run("run-e", idempotency_key="k", tenant_id="t1"))
        assert (created, again.id) == (False, "run-d"), "the key is per (workflow, tenant)"

        # waiting holds the key too.
        waiting = await store.transition("run-a", first.revision, {"status": "waiting"})
        again, created = await store.create(_run("run-f", idempotency_key="k"))
        assert (created, again.id) == (False, "run-a"), "a waiting run holds its key"
        _check(again, observe(waiting), "create() with a waiting run's key returned")

        # Once terminal, the key is free.
        holder = "run-a"
        for status, run_id in (("done", "run-g"), ("failed", "run-h"), ("cancelled", "run-i")):
            current = await store.get(holder)
            assert current is not None, f"{holder} is gone"
            await store.transition(holder, current.revision, {"status": status})
            fresh, created = await store.create(_run(run_id, idempotency_key="k"))
            assert created is True, f"a {status} run still held its idempotency key"
            _check(fresh, make_doc(run_id, idempotency_key="k"), "create() with a freed key")
            holder = run_id

        # No key is no key: runs without one never collide.
        await _put(store, "run-x")
        await _put(store, "run-y")
        total = await store.count(RunQuery())
        assert total == 8, f"the store holds {total} runs, expected 8"

    @clause
    async def test_idempotent_create_is_race_safe(self, stores: Stores) -> None:
        """create: of N concurrent creates with one idempotency key exactly one inserts.

        The others return that run with created=False (races spread over both
        handles with ``second_handle``).
        """
        width = self.capabilities.race_width
        for round_no in range(2):
            runs = [_run(f"race-{round_no}-{i}", idempotency_key="k") for i in range(width)]
            results = await asyncio.gather(
                *(stores.pick(i).create(run) for i, run in enumerate(runs)),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise AssertionError(
                    f"a racing create() raised {type(errors[0]).__name__}: {errors[0]}"
                ) from errors[0]
            outcomes = [r for r in results if not isinstance(r, BaseException)]
            winners = [run.id for run, created in outcomes if created]
            assert len(winners) == 1, (
                f"{len(winners)} of {width} concurrent creates with one key inserted a run"
            )
            losers = {run.id for run, created in outcomes if not created}
            assert losers <= set(winners), (
                f"losing creates returned {sorted(losers)}, not the winner {winners[0]}"
            )
            stored = await stores.main.count(RunQuery(status=RunStatus.RUNNING))
            assert stored == 1, f"{stored} active runs hold the key after the race, not 1"
            # End the winner: the next round races for a free key again.
            winner = await stores.main.get(winners[0])
            assert winner is not None, "the winning run is gone"
            await stores.main.transition(winner.id, winner.revision, {"status": "done"})

    @clause
    async def test_datetimes_read_back_are_utc(self, stores: Stores) -> None:
        """documents: every datetime read back is UTC (utcoffset() == 0), not just the same instant.

        Datetimes compare equal across offsets, so the comparison of documents
        cannot see a store that hands back UTC+1; every operation's result is
        checked for the offset itself (the guard checks every result of every
        clause and of the state machine the same way).
        """
        store = stores.main
        lease = _lease("w0", 1.5)
        wait = {
            "kind": "timer",
            "reason": None,
            "data": None,
            "event": None,
            "until": at(7.25),
            "hook_token_hash": None,
        }
        created = await _put(
            store,
            "run-1",
            lease=lease,
            wait=wait,
            steps=[step_doc("s0", "done", started_at=at(0.5), ended_at=at(1)), step_doc("s1")],
            mailbox=[{"name": "e", "data": None, "at": at(0.75)}],
            created_at=at(0.125),
            updated_at=at(0.25),
        )
        seen = [("create()", created), ("get()", await store.get("run-1"))]
        (claimed,) = await store.claim("w1", at(2), LEASE, 1, {"wf"})
        seen.append(("claim()", claimed))
        moved = await store.transition(
            "run-1",
            claimed.revision,
            {"status": "done", "ended_at": at(3.5), "updated_at": at(3.5), "next_run_at": at(4)},
        )
        seen.append(("transition()", moved))
        await store.heartbeat("run-1", "w1", at(4), LEASE)
        seen.append(("get() after heartbeat()", await store.get("run-1")))
        seen += [("find()", run) for run in (await store.find(RunQuery(limit=None))).items]
        for what, run in seen:
            assert run is not None, f"{what}: the run is gone"
            problem = non_utc_datetime(run)
            assert problem is None, f"{what} returned {problem}"

    # -- claim ------------------------------------------------------------------------

    @clause
    async def test_claim_leases_and_returns_runs_as_stored(self, stores: Stores) -> None:
        """claim: sets lease {owner, now + lease_for}, bumps revision and returns the run as stored.

        Nothing else changes; ``limit=0`` claims nothing.
        """
        store = stores.main
        await _put(store, "run-1", context={"k": "v"})
        await _put(store, "run-2", next_run_at=at(5))
        assert await store.claim("w1", at(10), LEASE, 0, {"wf"}) == [], "claim(limit=0)"
        claimed = await store.claim("w1", at(10), LEASE, 1, {"wf"})
        assert _ids(claimed) == ["run-1"], f"claim() returned {_ids(claimed)}"
        expected = make_doc("run-1", context={"k": "v"}, lease=_lease("w1", 40), revision=1)
        _check(claimed[0], expected, "claim() returned")
        await _stored(store, expected, "claim()")

        claimed = await store.claim("w2", at(10), 12.5, 5, ["wf"])
        assert _ids(claimed) == ["run-2"], f"claim() returned {_ids(claimed)}"
        expected = make_doc("run-2", next_run_at=at(5), lease=_lease("w2", 22.5), revision=1)
        _check(claimed[0], expected, "claim() with a fractional lease returned")
        await _stored(store, expected, "claim()")

    @clause
    async def test_claim_is_exclusive_while_lease_is_live(self, stores: Stores) -> None:
        """claim: while a lease is live the run is never returned to another worker (or again).

        Concurrent claims by many workers return disjoint runs; the lease is
        taken again only once ``expires_at <= now``.
        """
        store = stores.main
        await _put(store, "run-1")
        first = await store.claim("w1", T0, LEASE, 10, {"wf"})
        assert _ids(first) == ["run-1"], f"the first claim returned {_ids(first)}"
        for worker, seconds in (("w2", 0.0), ("w2", 29.999), ("w1", 10.0)):
            again = await store.claim(worker, at(seconds), LEASE, 10, {"wf"})
            assert again == [], (
                f"claim by {worker} at +{seconds}s returned {_ids(again)} "
                "while w1's lease runs to +30s"
            )
        taken = await store.claim("w2", at(30), LEASE, 10, {"wf"})
        assert _ids(taken) == ["run-1"], "an expired lease (expires_at == now) was not taken over"

        # A stampede: many workers, spread over the handles, claim at the same instant.
        width = self.capabilities.race_width
        for i in range(width):
            await _put(store, f"race-{i:02d}")
        now = at(100)
        results = await asyncio.gather(
            *(stores.pick(i).claim(f"r{i}", now, LEASE, 2, {"wf"}) for i in range(width)),
            return_exceptions=True,
        )
        seen: dict[str, str] = {}
        for i, result in enumerate(results):
            if isinstance(result, BaseException):
                raise AssertionError(
                    f"a racing claim() raised {type(result).__name__}: {result}"
                ) from result
            for run in result:
                assert run.id not in seen, (
                    f"{run.id} was claimed by both {seen[run.id]} and r{i} at the same instant"
                )
                seen[run.id] = f"r{i}"
                assert run.lease is not None and run.lease.owner == f"r{i}", (
                    f"claim() by r{i} returned {run.id} leased to {run.lease}"
                )
        assert seen, "no racing claim() got anything although every run was claimable"
        for run_id, worker in seen.items():
            stored = await store.get(run_id)
            assert stored is not None and stored.lease is not None
            assert stored.lease.owner == worker, (
                f"{run_id} was returned to {worker} but is stored leased to {stored.lease.owner}"
            )
        rest = await store.claim("late", now, LEASE, 1000, {"wf"})
        overlap = set(_ids(rest)) & set(seen)
        assert not overlap, f"runs leased in the race were claimed again: {sorted(overlap)}"
        missing = {f"race-{i:02d}" for i in range(width)} - set(seen) - set(_ids(rest))
        assert not missing, f"claimable runs were never claimed: {sorted(missing)}"

    @clause
    async def test_claim_skips_terminal_runs(self, stores: Stores) -> None:
        """claim: done, failed and cancelled runs are never claimed, even due and lease-free."""
        store = stores.main
        for status in ("done", "failed", "cancelled"):
            await _put(store, f"run-{status}", status=status, ended_at=T0)
            await _put(
                store, f"run-{status}-leased", status=status, lease=_lease("gone", 1), ended_at=T0
            )
        await _put(store, "run-control")
        claimed = await store.claim("w1", at(60), LEASE, 100, {"wf"})
        assert _ids(claimed) == ["run-control"], f"claim() returned {_ids(claimed)}"

    @clause
    async def test_claim_skips_paused_runs(self, stores: Stores) -> None:
        """claim: paused runs are never claimed; unpausing makes them claimable."""
        store = stores.main
        await _put(store, "run-paused", paused=True)
        await _put(store, "run-paused-waiting", paused=True, status="waiting")
        await _put(store, "run-paused-draft", paused=True, status="draft")
        await _put(store, "run-paused-expired", paused=True, lease=_lease("gone", 1))
        await _put(store, "run-control")
        claimed = await store.claim("w1", at(60), LEASE, 100, {"wf"})
        assert _ids(claimed) == ["run-control"], f"claim() returned {_ids(claimed)}"
        paused = await store.get("run-paused")
        assert paused is not None
        await store.transition(paused.id, paused.revision, {"paused": False})
        claimed = await store.claim("w1", at(60), LEASE, 100, {"wf"})
        assert _ids(claimed) == ["run-paused"], f"after unpausing, claim() got {_ids(claimed)}"

    @clause
    async def test_claim_skips_runs_not_yet_due(self, stores: Stores) -> None:
        """claim: a run is claimable only once next_run_at <= now; next_run_at None never is."""
        store = stores.main
        await _put(store, "run-later", next_run_at=at(60))
        await _put(store, "run-later-waiting", status="waiting", next_run_at=at(60))
        await _put(store, "run-undated", next_run_at=None)
        await _put(store, "run-undated-waiting", status="waiting", next_run_at=None)
        await _put(store, "run-control", next_run_at=at(0))
        claimed = await store.claim("w1", at(59.999), LEASE, 100, {"wf"})
        assert _ids(claimed) == ["run-control"], f"claim() at +59.999s returned {_ids(claimed)}"
        claimed = await store.claim("w1", at(60), LEASE, 100, {"wf"})
        assert sorted(_ids(claimed)) == ["run-later", "run-later-waiting"], (
            f"claim() at +60s (due exactly now) returned {_ids(claimed)}"
        )
        claimed = await store.claim("w2", at(10**7), LEASE, 100, {"wf"})
        undated = {"run-undated", "run-undated-waiting"} & set(_ids(claimed))
        assert not undated, f"runs without next_run_at were claimed: {sorted(undated)}"

    @clause
    async def test_claim_orders_by_priority_then_due_time(self, stores: Stores) -> None:
        """claim: priority descending, then next_run_at ascending, then id; limit takes a prefix."""
        store = stores.main
        # (id, priority, due) — inserted out of order.
        for run_id, priority, due in (
            ("e", 0, 5),
            ("b", 2, 9),
            ("f", -1, 0),
            ("a", 0, 5),
            ("d", 1, 0),
            ("c", 2, 1),
        ):
            await _put(store, run_id, priority=priority, next_run_at=at(due))
        first = await store.claim("w1", at(10), LEASE, 3, {"wf"})
        assert _ids(first) == ["c", "b", "d"], f"claim(limit=3) returned {_ids(first)}"
        rest = await store.claim("w2", at(10), LEASE, 10, {"wf"})
        assert _ids(rest) == ["a", "e", "f"], f"the next claim returned {_ids(rest)}"

    @clause
    async def test_claim_filters_by_workflow_and_tenant(self, stores: Stores) -> None:
        """claim: only runs whose workflow_id is in `workflows` and, when given, of `tenant_id`."""
        store = stores.main
        await _put(store, "a-none", workflow_id="wf-a")
        await _put(store, "a-t1", workflow_id="wf-a", tenant_id="t1")
        await _put(store, "b-t1", workflow_id="wf-b", tenant_id="t1")
        await _put(store, "c-t2", workflow_id="wf-c", tenant_id="t2")
        now = at(1)
        cases: list[tuple[Any, str | None, list[str]]] = [
            ({"wf-x"}, None, []),
            ([], None, []),
            (("wf-a", "wf-b"), "t1", ["a-t1", "b-t1"]),
            (frozenset({"wf-a"}), None, ["a-none"]),
            (["wf-c"], "t1", []),
            ({"wf-c"}, "t2", ["c-t2"]),
        ]
        for workflows, tenant, expected in cases:
            claimed = await store.claim("w1", now, LEASE, 100, workflows, tenant)
            assert sorted(_ids(claimed)) == expected, (
                f"claim(workflows={sorted(workflows)}, tenant_id={tenant!r}) "
                f"returned {_ids(claimed)}, expected {expected}"
            )

    @clause
    async def test_claim_filters_by_registered_versions(self, stores: Stores) -> None:
        """claim: with a name -> versions mapping, only runs of those versions are claimed."""
        store = stores.main
        await _put(store, "a-v1", workflow_id="wf-a", workflow_version="1")
        await _put(store, "a-v2", workflow_id="wf-a", workflow_version="2")
        await _put(store, "b-v1", workflow_id="wf-b", workflow_version="1")
        now = at(1)
        cases: list[tuple[dict[str, tuple[str, ...]], list[str]]] = [
            ({"wf-a": ("2",)}, ["a-v2"]),
            ({"wf-a": ("3",), "wf-c": ("1",)}, []),
            ({"wf-a": ()}, []),
            ({"wf-a": ("1", "9"), "wf-b": ("1",)}, ["a-v1", "b-v1"]),
            ({"wf-a": ("1",)}, []),  # already leased by the previous case
        ]
        for workflows, expected in cases:
            claimed = await store.claim("w1", now, LEASE, 100, workflows)
            assert sorted(_ids(claimed)) == expected, (
                f"claim(workflows={workflows}) returned {_ids(claimed)}, expected {expected}"
            )

    @clause
    async def test_expired_lease_takeover_counts_a_recovery(self, stores: Stores) -> None:
        """claim: taking over an expired lease of a running run does recoveries + 1.

        Only for ``running``: an expired lease of a waiting or draft run, or a
        released lease, is taken without counting a recovery.
        """
        store = stores.main
        await _put(store, "running", lease=_lease("w1", 30))
        await _put(store, "waiting", status="waiting", lease=_lease("w1", 30))
        await _put(store, "draft", status="draft", lease=_lease("w1", 30))
        await _put(store, "released")
        claimed = {r.id: r for r in await store.claim("w2", at(30), LEASE, 10, {"wf"})}
        assert sorted(claimed) == ["draft", "released", "running", "waiting"], (
            f"claim() at the lease's expiry returned {sorted(claimed)}"
        )
        for run_id, recoveries in (("running", 1), ("waiting", 0), ("draft", 0), ("released", 0)):
            status = run_id if run_id != "released" else "running"
            expected = make_doc(
                run_id,
                status=status,
                lease=_lease("w2", 60),
                revision=1,
                recoveries=recoveries,
            )
            _check(claimed[run_id], expected, f"takeover of {run_id!r} returned")
            await _stored(store, expected, f"takeover of {run_id!r}")
        again = await store.claim("w3", at(60), LEASE, 10, {"wf"}, None)
        running = next(r for r in again if r.id == "running")
        assert running.recoveries == 2, f"a second takeover left recoveries={running.recoveries}"

    @clause
    async def test_claim_orders_priorities_as_numbers(self, stores: Stores) -> None:
        """claim: priorities order as numbers (10 before 9, -1 before -2), never as text."""
        store = stores.main
        priorities = (("p-a", 9), ("p-b", -2), ("p-c", 10), ("p-d", -1), ("p-e", 0))
        expected = ["p-c", "p-a", "p-e", "p-d", "p-b"]
        for run_id, priority in priorities:
            await _put(store, run_id, priority=priority, workflow_id="wf-one")
            await _put(store, f"{run_id}-batch", priority=priority, workflow_id="wf-all")
        got = []
        for _ in priorities:
            got += _ids(await store.claim("w1", at(1), LEASE, 1, {"wf-one"}))
        assert got == expected, f"claim(limit=1) five times returned {got}, expected {expected}"
        batch = _ids(await store.claim("w1", at(1), LEASE, 10, {"wf-all"}))
        want = [f"{run_id}-batch" for run_id in expected]
        assert batch == want, f"claim(limit=10) returned {batch}, expected {want}"

    @clause
    async def test_claim_ranks_every_due_run_by_priority(self, stores: Stores) -> None:
        """claim: the top priority comes first however many older, lower-priority runs are due.

        One high-priority run is due after 300 low-priority ones: a store that
        ranks by priority only within a window of the earliest-due runs fails.
        """
        store = stores.main
        runs = [_run(f"old-{i:03d}", next_run_at=at(i / 100)) for i in range(300)]
        for start in range(0, len(runs), 50):
            chunk = runs[start : start + 50]
            created = await asyncio.gather(
                *(stores.pick(i).create(run) for i, run in enumerate(chunk))
            )
            assert all(flag for _, flag in created), "create() of a new id returned created=False"
        await _put(store, "urgent", priority=1, next_run_at=at(10), created_at=at(10))
        first = _ids(await store.claim("w1", at(20), LEASE, 1, {"wf"}))
        assert first == ["urgent"], (
            f"claim(limit=1) returned {first}; 'urgent' (priority 1) is due behind 300 "
            "older priority-0 runs and must come first"
        )
        rest = _ids(await store.claim("w1", at(20), LEASE, 3, {"wf"}))
        assert rest == ["old-000", "old-001", "old-002"], f"the next claim returned {rest}"

    @clause
    async def test_claim_compares_times_below_the_second(self, stores: Stores) -> None:
        """claim: due times and lease expiries compare to the millisecond, never whole seconds.

        Due at +10.5 s is not claimable at +10.2 s; due +10.2 s comes before
        +10.7 s; a 12.5 s lease taken at +10 s is not taken over at +22.2 s.
        """
        store = stores.main
        await _put(store, "not-yet", next_run_at=at(10.5), workflow_id="wf-due")
        early = _ids(await store.claim("w1", at(10.2), LEASE, 10, {"wf-due"}))
        assert early == [], f"claim() at +10.2s returned {early}, due only at +10.5s"
        due = _ids(await store.claim("w1", at(10.5), LEASE, 10, {"wf-due"}))
        assert due == ["not-yet"], f"claim() at +10.5s returned {due}, due at +10.5s"

        await _put(store, "a-later", next_run_at=at(10.7), workflow_id="wf-order")
        await _put(store, "b-sooner", next_run_at=at(10.2), workflow_id="wf-order")
        order = _ids(await store.claim("w1", at(11), LEASE, 10, {"wf-order"}))
        assert order == ["b-sooner", "a-later"], (
            f"claim() returned {order}: due +10.2s comes before due +10.7s"
        )

        await _put(store, "leased", workflow_id="wf-lease")
        (claimed,) = await store.claim("w1", at(10), 12.5, 1, {"wf-lease"})
        assert claimed.lease is not None and claimed.lease.expires_at == at(22.5)
        stolen = _ids(await store.claim("w2", at(22.2), LEASE, 1, {"wf-lease"}))
        assert stolen == [], f"claim() at +22.2s took over {stolen}, leased until +22.5s"
        taken = _ids(await store.claim("w2", at(22.5), LEASE, 1, {"wf-lease"}))
        assert taken == ["leased"], f"claim() at +22.5s (the expiry) returned {taken}"

    @clause
    async def test_claim_racing_the_owners_heartbeat_exactly_one_wins(self, stores: Stores) -> None:
        """claim: a takeover racing the owner's heartbeat of an expired lease; exactly one wins.

        A heartbeat does not bump the revision, so a lease write whose filter
        pins only the revision would overwrite a heartbeat that landed after
        the claim read its candidates. Raced many times, in both orders, over
        both handles with ``second_handle``.
        """
        store = stores.main
        for n in range(20):
            workflow, run_id = f"wf-race-{n}", f"race-{n:02d}"
            await _put(store, run_id, workflow_id=workflow)
            (held,) = await store.claim("owner", T0, LEASE, 1, {workflow})
            beat = stores.pick(n).heartbeat(run_id, "owner", at(31), LEASE)
            take = stores.pick(n + 1).claim("taker", at(31), LEASE, 1, {workflow})
            if n % 2:
                beaten, taken = await asyncio.gather(beat, take, return_exceptions=True)
            else:
                taken, beaten = await asyncio.gather(take, beat, return_exceptions=True)
            if isinstance(taken, BaseException):
                raise AssertionError(f"the racing claim() raised {taken!r}") from taken
            if isinstance(beaten, BaseException) and not isinstance(beaten, LeaseLostError):
                raise AssertionError(f"the racing heartbeat() raised {beaten!r}") from beaten
            beat_won, take_won = not isinstance(beaten, BaseException), bool(taken)
            assert beat_won != take_won, (
                f"round {n}: the owner's heartbeat {'succeeded' if beat_won else 'failed'} and "
                f"the racing claim {'took' if take_won else 'did not take'} the run at +31s "
                "(the lease expired at +30s): exactly one of them must win"
            )
            expected = observe(held)
            if beat_won:
                expected["lease"] = _lease("owner", 61)
            else:
                expected.update(lease=_lease("taker", 61), revision=2, recoveries=1)
                _check(taken[0], expected, f"round {n}: the winning claim() returned")
            await _stored(store, expected, f"round {n}: after the race")

    @clause
    async def test_empty_tenant_is_a_tenant(self, stores: Stores) -> None:
        """claim: tenant_id="" selects only runs of tenant "" (in find and count too).

        "When tenant_id is given" includes the empty string: it is not "no filter".
        """
        store = stores.main
        await _put(store, "t-none")
        await _put(store, "t-empty", tenant_id="")
        await _put(store, "t-one", tenant_id="t1")
        found = _ids((await store.find(RunQuery(tenant_id="", limit=None))).items)
        assert found == ["t-empty"], f"find(tenant_id='') returned {found}"
        counted = await store.count(RunQuery(tenant_id=""))
        assert counted == 1, f"count(tenant_id='') returned {counted}"
        claimed = _ids(await store.claim("w1", at(1), LEASE, 10, {"wf"}, ""))
        assert claimed == ["t-empty"], f"claim(tenant_id='') returned {claimed}"
        rest = sorted(_ids(await store.claim("w1", at(1), LEASE, 10, {"wf"}, None)))
        assert rest == ["t-none", "t-one"], f"claim(tenant_id=None) returned {rest}"

    @clause
    async def test_claim_leases_valid_runs_beside_corrupt_documents(self, stores: Stores) -> None:
        """claim: corrupt documents stay leased and are reported; the valid runs still go out.

        The claim leases every candidate it picked, corrupt or not, then raises
        ``DataCorruptionError`` naming a corrupt run, with the valid runs it
        leased in ``claimed`` (in claim order). Runs only with
        ``Capabilities.corrupt_documents`` (the harness damages the documents).
        """
        if not self.capabilities.corrupt_documents:
            raise unittest.SkipTest(
                "the harness cannot damage documents (Capabilities.corrupt_documents)"
            )
        store = stores.main
        for run_id, priority, due in (
            ("good-1", 0, 0),
            ("bad-1", 5, 0),
            ("good-2", 0, 1),
            ("bad-2", 3, 2),
            ("good-3", -1, 0),
        ):
            await _put(store, run_id, priority=priority, next_run_at=at(due))
        for run_id in ("bad-1", "bad-2"):
            await self.corrupt_document(store.inner, run_id)
        error = await _raises(
            DataCorruptionError,
            store.claim("w1", at(5), LEASE, 10, {"wf"}),
            "claim() of a batch holding two corrupt documents",
        )
        assert error.run_id in ("bad-1", "bad-2"), (
            f"the DataCorruptionError names run {error.run_id!r}, not a corrupt one"
        )
        claimed = list(error.claimed)
        assert all(isinstance(r, WorkflowRun) for r in claimed), f"claimed holds {claimed!r}"
        assert _ids(claimed) == ["good-1", "good-2", "good-3"], (
            f"the error's claimed lists {_ids(claimed)}: the valid runs of the claim, in "
            "claim order, must still be leased and returned"
        )
        for run in claimed:
            due = {"good-1": 0, "good-2": 1, "good-3": 0}[run.id]
            priority = -1 if run.id == "good-3" else 0
            expected = make_doc(
                run.id,
                priority=priority,
                next_run_at=at(due),
                lease=_lease("w1", 35),
                revision=1,
            )
            _check(run, expected, f"the claimed {run.id}")
            await _stored(store, expected, f"the claimed {run.id}")
        for run_id in ("bad-1", "bad-2"):
            await _raises(DataCorruptionError, store.get(run_id), f"get() of corrupt {run_id}")
        try:
            again = await store.claim("w2", at(6), LEASE, 10, {"wf"})
        except DataCorruptionError as exc:
            raise AssertionError(
                f"a second claim() met corrupt run {exc.run_id!r} again: a corrupt document "
                "stays leased, so no worker spins on it"
            ) from exc
        assert again == [], f"a second claim() returned {_ids(again)}; every run is leased"

    # -- transition ------------------------------------------------------------------

    @clause
    async def test_transition_applies_patch_paths(self, stores: Stores) -> None:
        """transition: sets exactly the patched dotted paths, UNSET removes a key, revision + 1.

        Paths: top-level fields, ``steps.N``, ``steps.N.field``, ``context.k``,
        ``meta.k``; the run is returned as stored.
        """
        store = stores.main
        await _put(
            store,
            "run-1",
            context={"a": 1, "b": {"x": 1}, "keep": True},
            meta={"user": "u"},
            lease=_lease("w1", 30),
        )
        done_step = step_doc(
            "s0", "done", attempts=1, started_at=at(1), ended_at=at(2), output={"v": [1, 2]}
        )
        wait = {
            "kind": "event",
            "reason": None,
            "data": {"d": 1},
            "event": "paid",
            "until": at(90),
            "hook_token_hash": None,
        }
        result = await store.transition(
            "run-1",
            0,
            {
                "status": "waiting",
                "current_step_id": "s1",
                "steps.0": done_step,
                "steps.1.status": "waiting",
                "steps.1.attempts": 1,
                "context.a": 2,
                "context.c": [1, {"y": None}],
                "context.b": UNSET,
                "meta.team": "t",
                "wait": wait,
                "next_run_at": None,
                "updated_at": at(2),
            },
            owner="w1",
        )
        expected = make_doc(
            "run-1",
            status="waiting",
            current_step_id="s1",
            steps=[done_step, step_doc("s1", "waiting", attempts=1)],
            context={"a": 2, "c": [1, {"y": None}], "keep": True},
            meta={"user": "u", "team": "t"},
            wait=wait,
            next_run_at=None,
            updated_at=at(2),
            lease=_lease("w1", 30),
            revision=1,
        )
        _check(result, expected, "transition() returned")
        await _stored(store, expected, "transition()")

        result = await store.transition(
            "run-1",
            1,
            {
                "lease": None,
                "meta.user": UNSET,
                "context.missing": UNSET,
                "output": {"total": 3},
                "status": "done",
                "ended_at": at(3.5),
            },
        )
        expected.update(
            lease=None,
            meta={"team": "t"},
            output={"total": 3},
            status="done",
            ended_at=at(3.5),
            revision=2,
        )
        _check(result, expected, "second transition() returned")
        await _stored(store, expected, "second transition()")

    @clause
    async def test_transition_rejects_stale_revision(self, stores: Stores) -> None:
        """transition: a revision other than the stored one → ConflictError; nothing changes."""
        store = stores.main
        await _put(store, "run-1")
        current = await store.transition("run-1", 0, {"context.step": 1})
        assert current.revision == 1, f"transition() left revision {current.revision}, not 1"
        for stale in (0, 2, -1):
            await _raises(
                ConflictError,
                store.transition("run-1", stale, {"context.step": 99, "status": "done"}),
                f"transition() with revision {stale} (stored: 1)",
            )
            await _unchanged(store, current, f"transition(revision={stale})")
        (claimed,) = await store.claim("w1", T0, LEASE, 1, {"wf"})
        await _raises(
            ConflictError,
            store.transition("run-1", 1, {"status": "done"}, owner="w1"),
            "transition() with the revision from before a claim",
        )
        await _unchanged(store, claimed, "transition() after a claim")

    @clause
    async def test_transition_rejects_foreign_or_missing_owner(self, stores: Stores) -> None:
        """transition: with `owner`, the lease must be that owner's (ConflictError otherwise).

        An expired lease nobody took over still counts as owned; without
        ``owner`` (a client write) the lease is not checked.
        """
        store = stores.main
        unleased = await _put(store, "run-1")
        await _raises(
            ConflictError,
            store.transition("run-1", 0, {"status": "done"}, owner="w1"),
            "transition(owner='w1') of an unleased run",
        )
        await _unchanged(store, unleased, "transition(owner=...) of an unleased run")
        (claimed,) = await store.claim("w1", T0, LEASE, 1, {"wf"})
        await _raises(
            ConflictError,
            store.transition("run-1", claimed.revision, {"status": "done"}, owner="w2"),
            "transition(owner='w2') of a run leased to w1",
        )
        await _unchanged(store, claimed, "transition() by a foreign owner")
        own = await store.transition("run-1", claimed.revision, {"context.a": 1}, owner="w1")
        assert own.revision == claimed.revision + 1, "the owner's transition() did not bump"
        # w1's lease expired at +30s, but nobody took it over: still w1's.
        late = await store.transition("run-1", own.revision, {"context.a": 2}, owner="w1")
        assert late.context == {"a": 2}, "the owner of an expired, untaken lease could not write"
        client = await store.transition("run-1", late.revision, {"paused": True})
        assert client.paused and client.lease is not None and client.lease.owner == "w1", (
            "a client write (owner=None) must apply and leave the lease alone"
        )

    @clause
    async def test_transition_fences_a_taken_over_lease(self, stores: Stores) -> None:
        """transition: once another worker took the lease over, the old owner can never write."""
        store = stores.main
        await _put(store, "run-1")
        (mine,) = await store.claim("w1", T0, LEASE, 1, {"wf"})
        (theirs,) = await store.claim("w2", at(31), LEASE, 1, {"wf"})
        for revision in (mine.revision, theirs.revision):
            await _raises(
                ConflictError,
                store.transition("run-1", revision, {"status": "done"}, owner="w1"),
                f"transition(owner='w1', revision={revision}) after w2 took the lease",
            )
            await _unchanged(store, theirs, "transition() by a fenced-off worker")
        await _raises(
            LeaseLostError,
            store.heartbeat("run-1", "w1", at(32), LEASE),
            "heartbeat() by the worker whose lease was taken over",
        )
        ok = await store.transition("run-1", theirs.revision, {"status": "done"}, owner="w2")
        assert ok.status == RunStatus.DONE, "the new owner could not write"

    @clause
    async def test_concurrent_transitions_exactly_one_wins(self, stores: Stores) -> None:
        """transition: of N concurrent writes expecting the same revision exactly one applies."""
        store = stores.main
        await _put(store, "run-1")
        width = self.capabilities.race_width
        for owner in (None, "w1"):
            current = await store.get("run-1")
            assert current is not None
            if owner is not None:
                (current,) = await store.claim(owner, T0, LEASE, 1, {"wf"})
            results = await asyncio.gather(
                *(
                    stores.pick(i).transition(
                        "run-1", current.revision, {"context.winner": i}, owner=owner
                    )
                    for i in range(width)
                ),
                return_exceptions=True,
            )
            wins = [r for r in results if isinstance(r, WorkflowRun)]
            others = [r for r in results if not isinstance(r, WorkflowRun | ConflictError)]
            if others:
                raise AssertionError(
                    f"a racing transition() raised {type(others[0]).__name__}: {others[0]}"
                )
            assert len(wins) == 1, (
                f"{len(wins)} of {width} concurrent transitions from one revision applied"
            )
            stored = await store.get("run-1")
            assert stored is not None
            assert stored.revision == current.revision + 1, (
                f"after the race the revision is {stored.revision}, not {current.revision + 1}"
            )
            assert stored.context == wins[0].context, (
                f"the stored context {stored.context} is not the winner's {wins[0].context}"
            )

    @clause
    async def test_transition_unknown_run_raises_not_found(self, stores: Stores) -> None:
        """transition: an unknown or deleted run → WorkflowNotFoundError; nothing is created."""
        store = stores.main
        for owner in (None, "w1"):
            await _raises(
                WorkflowNotFoundError,
                store.transition("no-such-run", 0, {"status": "done"}, owner=owner),
                f"transition(owner={owner!r}) of an unknown run",
            )
        await _put(store, "run-1")
        await store.delete(RunQuery(run_ids=["run-1"]))
        await _raises(
            WorkflowNotFoundError,
            store.transition("run-1", 0, {"status": "done"}),
            "transition() of a deleted run",
        )
        total = await store.count(RunQuery())
        assert total == 0, f"transition() of unknown runs left {total} runs behind (an upsert?)"

    @clause
    async def test_transition_replaces_dict_values_never_merges(self, stores: Stores) -> None:
        """transition: a dict value replaces the old value whole; keys it lacks are gone.

        ``{"context.b": {"y": 2}}`` over ``{"b": {"x": 1}}`` gives ``{"b": {"y": 2}}``;
        the same for a top-level dict field and for a key inside a step.
        """
        store = stores.main
        await _put(
            store,
            "run-1",
            context={"b": {"x": 1}, "c": {"q": 1}, "keep": {"k": 1}},
            meta={"user": "u", "nested": {"k": 1}},
            output={"m": 1, "n": 1},
            steps=[step_doc("s0", "done", output={"a": 1, "deep": {"d": 1}}), step_doc("s1")],
        )
        result = await store.transition(
            "run-1",
            0,
            {
                "context.b": {"y": 2},
                "context.c": {},
                "meta": {"fresh": 1},
                "output": {"n": 2},
                "steps.0.output": {"deep": {"e": 2}},
            },
        )
        expected = make_doc(
            "run-1",
            context={"b": {"y": 2}, "c": {}, "keep": {"k": 1}},
            meta={"fresh": 1},
            output={"n": 2},
            steps=[step_doc("s0", "done", output={"deep": {"e": 2}}), step_doc("s1")],
            revision=1,
        )
        _check(result, expected, "transition() of dict values returned")
        await _stored(store, expected, "transition() of dict values")

    @clause
    async def test_transition_ignores_idempotency_keys(self, stores: Stores) -> None:
        """transition: never fails because of an idempotency key (keys constrain create only).

        A done run with key ``k`` moved back to running while another active
        run holds ``k`` applies; so does giving a run a key that is held.
        """
        store = stores.main
        await _put(store, "key-old", idempotency_key="k", status="done", ended_at=T0)
        await _put(store, "key-new", idempotency_key="k")
        await _put(store, "keyless")
        revived = await store.transition("key-old", 0, {"status": "running", "ended_at": None})
        expected = make_doc("key-old", idempotency_key="k", revision=1)
        _check(revived, expected, "transition() reviving a run whose key is held returned")
        await _stored(store, expected, "transition() reviving a run whose key is held")
        keyed = await store.transition("keyless", 0, {"idempotency_key": "k"})
        expected = make_doc("keyless", idempotency_key="k", revision=1)
        _check(keyed, expected, "transition() giving a run a held key returned")
        await _stored(store, expected, "transition() giving a run a held key")
        again, created = await store.create(_run("key-third", idempotency_key="k"))
        assert created is False and again.id in {"key-old", "key-new", "keyless"}, (
            f"create() with key 'k', held by three active runs, returned ({again.id}, {created})"
        )

    @clause
    async def test_transition_repeated_with_its_write_id_returns_the_stored_run(
        self, stores: Stores
    ) -> None:
        """transition: repeating an applied write with its write_id returns the run as stored.

        (The retry after a lost answer.) Nothing is written twice; the same
        revision with another write id, or none, is still a ConflictError, and
        so is the repeat once a later write moved the run on.
        """
        store = stores.main
        await _put(store, "run-1")
        (claimed,) = await store.claim("w1", T0, LEASE, 1, {"wf"})
        rev = claimed.revision
        first = await store.transition(
            "run-1", rev, {"context.a": 1}, owner="w1", write_id="write-1"
        )
        again = await store.transition(
            "run-1", rev, {"context.a": 1}, owner="w1", write_id="write-1"
        )
        _check(again, observe(first), "transition() repeated with its write_id returned")
        await _unchanged(store, first, "repeat of an applied transition")
        for other in ("write-2", None):
            await _raises(
                ConflictError,
                store.transition("run-1", rev, {"context.a": 9}, owner="w1", write_id=other),
                f"transition() at a stale revision with write_id={other!r}",
            )
            await _unchanged(store, first, f"transition(write_id={other!r})")
        client = await store.transition("run-1", first.revision, {"paused": True}, write_id="c-1")
        repeat = await store.transition("run-1", first.revision, {"paused": True}, write_id="c-1")
        _check(repeat, observe(client), "a client transition repeated with its write_id returned")
        later = await store.transition("run-1", client.revision, {"context.b": 2})
        await _raises(
            ConflictError,
            store.transition("run-1", first.revision, {"paused": True}, write_id="c-1"),
            "transition() repeated with its write_id after a later write",
        )
        await _unchanged(store, later, "a stale repeat of a transition")

    @clause
    async def test_create_repeated_with_its_write_id_returns_the_stored_run(
        self, stores: Stores
    ) -> None:
        """create: repeating an applied create with its write_id returns (stored run, True).

        Another write id, or none, is still a ConflictError; so is the repeat
        once the run was written again.
        """
        store = stores.main
        run = _run("run-1", context={"v": 1})
        first, created = await store.create(run, write_id="create-1")
        assert created, "create(write_id=...) of a new id returned created=False"
        again, created = await store.create(run, write_id="create-1")
        assert created, "create() repeated with its write_id returned created=False"
        _check(again, observe(first), "create() repeated with its write_id returned")
        for other in ("create-2", None):
            await _raises(
                ConflictError,
                store.create(_run("run-1", context={"v": 2}), write_id=other),
                f"create() of an existing id with write_id={other!r}",
            )
            await _unchanged(store, first, f"create(write_id={other!r})")
        total = await store.count(RunQuery())
        assert total == 1, f"a repeated create() left {total} runs, not 1"
        moved = await store.transition("run-1", first.revision, {"context.v": 3})
        await _raises(
            ConflictError,
            store.create(run, write_id="create-1"),
            "create() repeated with its write_id after the run was written again",
        )
        await _unchanged(store, moved, "a stale repeat of a create")

    @clause
    async def test_create_takes_a_key_its_holder_gave_up(self, stores: Stores) -> None:
        """create: a key an active run gave up (set to null or to another key) is free again.

        ``Debounce`` relies on it: a pending run that began gives its bucket's
        key up, and the next start's create must insert a new run.
        """
        store = stores.main
        await _put(store, "gave-up", idempotency_key="k")
        await store.transition("gave-up", 0, {"idempotency_key": None})
        fresh, created = await store.create(_run("takes-k", idempotency_key="k"))
        assert created and fresh.id == "takes-k", (
            f"create() with key 'k', given up by its active holder, returned ({fresh.id}, "
            f"{created}) instead of inserting"
        )
        await _put(store, "moved", idempotency_key="m")
        await store.transition("moved", 0, {"idempotency_key": "m2"})
        fresh, created = await store.create(_run("takes-m", idempotency_key="m"))
        assert created and fresh.id == "takes-m", (
            f"create() with key 'm', which its holder changed to 'm2', returned ({fresh.id}, "
            f"{created}) instead of inserting"
        )
        held, created = await store.create(_run("wants-m2", idempotency_key="m2"))
        assert not created and held.id == "moved", (
            f"create() with key 'm2', now held by 'moved', returned ({held.id}, {created})"
        )

    # -- heartbeat ---------------------------------------------------------------------

    @clause
    async def test_heartbeat_extends_lease_without_bumping_revision(self, stores: Stores) -> None:
        """heartbeat: the owner's lease becomes now + lease_for; revision does not change.

        It also works for the owner of an expired lease nobody took over.
        """
        store = stores.main
        await _put(store, "run-1")
        (claimed,) = await store.claim("w1", T0, LEASE, 1, {"wf"})
        expected = observe(claimed)
        status = await store.heartbeat("run-1", "w1", at(20), LEASE)
        assert status == RunStatus.RUNNING, f"heartbeat() returned {status!r}, not 'running'"
        expected["lease"] = _lease("w1", 50)
        await _stored(store, expected, "heartbeat()")
        status = await store.heartbeat("run-1", "w1", at(60), 45)
        assert status == RunStatus.RUNNING, f"heartbeat() returned {status!r}"
        expected["lease"] = _lease("w1", 105)
        await _stored(store, expected, "heartbeat() of an expired, untaken lease")
        stolen = await store.claim("w2", at(104.999), LEASE, 1, {"wf"})
        assert stolen == [], "a heartbeat-extended lease was claimed by another worker"

    @clause
    async def test_heartbeat_by_non_owner_fails(self, stores: Stores) -> None:
        """heartbeat: anyone but lease.owner gets LeaseLostError (also unleased and unknown runs).

        The lease and the revision stay as they were.
        """
        store = stores.main
        unleased = await _put(store, "run-1")
        await _raises(
            LeaseLostError,
            store.heartbeat("run-1", "w1", T0, LEASE),
            "heartbeat() of an unleased run",
        )
        await _unchanged(store, unleased, "heartbeat() of an unleased run")
        (claimed,) = await store.claim("w1", T0, LEASE, 1, {"wf"})
        for worker in ("w2", "w1 ", "W1", ""):
            await _raises(
                LeaseLostError,
                store.heartbeat("run-1", worker, at(1), LEASE),
                f"heartbeat() by {worker!r} of a run leased to 'w1'",
            )
            await _unchanged(store, claimed, f"heartbeat() by {worker!r}")
        (taken,) = await store.claim("w2", at(31), LEASE, 1, {"wf"})
        await _raises(
            LeaseLostError,
            store.heartbeat("run-1", "w1", at(32), LEASE),
            "heartbeat() by the previous owner after a takeover",
        )
        await _unchanged(store, taken, "heartbeat() by the previous owner")
        await _raises(
            LeaseLostError,
            store.heartbeat("no-such-run", "w1", T0, LEASE),
            "heartbeat() of an unknown run",
        )

    @clause
    async def test_heartbeat_reports_current_status(self, stores: Stores) -> None:
        """heartbeat: returns the run's status as stored, so a worker learns of a cancellation."""
        store = stores.main
        await _put(store, "run-1")
        (claimed,) = await store.claim("w1", T0, LEASE, 1, {"wf"})
        revision = claimed.revision
        for status in ("waiting", "cancelled", "done"):
            revision = (await store.transition("run-1", revision, {"status": status})).revision
            got = await store.heartbeat("run-1", "w1", at(1), LEASE)
            assert got == RunStatus(status), f"heartbeat() returned {got!r} for a {status} run"

    @clause
    async def test_heartbeat_sets_expiry_to_now_plus_lease_for(self, stores: Stores) -> None:
        """heartbeat: expires_at becomes exactly now + lease_for, even shorter or fractional.

        After a 30 s claim, ``heartbeat(+1 s, 5)`` gives +6 s (not the later
        +30 s); ``heartbeat(+10 s, 2.5)`` gives +12.5 s (not +12 s).
        """
        store = stores.main
        await _put(store, "run-1")
        (claimed,) = await store.claim("w1", T0, LEASE, 1, {"wf"})
        expected = observe(claimed)
        for now, lease_for, expiry in ((1, 5.0, 6), (10, 2.5, 12.5), (12, 0.25, 12.25)):
            await store.heartbeat("run-1", "w1", at(now), lease_for)
            expected["lease"] = _lease("w1", expiry)
            await _stored(store, expected, f"heartbeat(+{now}s, lease_for={lease_for})")
        early = await store.claim("w2", at(12.2), LEASE, 1, {"wf"})
        assert early == [], f"claim() at +12.2s took {_ids(early)}, leased until +12.25s"
        taken = await store.claim("w2", at(12.25), LEASE, 1, {"wf"})
        assert _ids(taken) == ["run-1"], "the shortened lease was not taken over at its expiry"

    # -- revisions and durability ------------------------------------------------------

    @clause
    async def test_revisions_strictly_increase(self, stores: Stores) -> None:
        """revision: every claim and transition adds exactly one; heartbeats add nothing."""
        store = stores.main
        run = await _put(store, "run-1")
        seen = [run.revision]

        async def step(what: str, result: WorkflowRun, bump: int = 1) -> None:
            assert result.revision == seen[-1] + bump, (
                f"{what} returned revision {result.revision} after {seen[-1]}"
            )
            stored = await store.get("run-1")
            assert stored is not None and stored.revision == result.revision, (
                f"{what}: get() shows revision {stored and stored.revision}, "
                f"the write returned {result.revision}"
            )
            seen.append(result.revision)

        (claimed,) = await store.claim("w1", T0, LEASE, 1, {"wf"})
        await step("claim()", claimed)
        await step("transition()", await store.transition("run-1", seen[-1], {"context.a": 1}))
        await store.heartbeat("run-1", "w1", at(1), LEASE)
        after = await store.get("run-1")
        assert after is not None
        await step("heartbeat()", after, bump=0)
        (taken,) = await store.claim("w2", at(31), LEASE, 1, {"wf"})
        await step("claim() of an expired lease", taken)
        await step(
            "owner transition()",
            await store.transition("run-1", seen[-1], {"status": "waiting"}, owner="w2"),
        )
        await step(
            "client transition()", await store.transition("run-1", seen[-1], {"paused": False})
        )

    @clause
    async def test_acknowledged_writes_are_durable(self, stores: Stores) -> None:
        """durability: once a write returns, every later read (any handle) sees it."""

        async def everywhere(expected: dict[str, Any] | None, run_id: str, what: str) -> None:
            for n, handle in enumerate(stores.all):
                got = await handle.get(run_id)
                if expected is None:
                    assert got is None, f"{what}: handle {n} still has {run_id}"
                else:
                    _check(got, expected, f"{what}, then get() on handle {n}")
                page = await handle.find(RunQuery(run_ids=[run_id], limit=None))
                if expected is None:
                    assert page.items == [], f"{what}: find() on handle {n} still has {run_id}"
                else:
                    assert len(page.items) == 1, f"{what}: find() on handle {n} lost {run_id}"
                    _check(page.items[0], expected, f"{what}, then find() on handle {n}")

        store = stores.main
        created = await _put(store, "run-1")
        await everywhere(observe(created), "run-1", "create()")
        (claimed,) = await store.claim("w1", T0, LEASE, 1, {"wf"})
        await everywhere(observe(claimed), "run-1", "claim()")
        moved = await store.transition(
            "run-1", claimed.revision, {"context.n": 1, "status": "waiting"}, owner="w1"
        )
        await everywhere(observe(moved), "run-1", "transition()")
        moved = await store.transition("run-1", moved.revision, {"context.n": 2})
        await everywhere(observe(moved), "run-1", "a second transition()")
        await store.heartbeat("run-1", "w1", at(10), LEASE)
        beat = observe(moved)
        beat["lease"] = _lease("w1", 40)
        await everywhere(beat, "run-1", "heartbeat()")
        deleted = await store.delete(RunQuery(run_ids=["run-1"]))
        assert deleted == 1, f"delete() of one run returned {deleted}"
        await everywhere(None, "run-1", "delete()")

    # -- queries ---------------------------------------------------------------------

    @clause
    async def test_find_filters_by_every_query_field(self, stores: Stores) -> None:
        """find: every RunQuery filter field selects exactly the matching runs (filters AND)."""
        store = stores.main
        await _seed_query_runs(store)
        for name, query, expected in _FILTER_CASES:
            page = await store.find(RunQuery(**{**_fields(query), "limit": None}))
            got = _ids(page.items)
            assert sorted(got) == sorted(expected), (
                f"find({name}) returned {sorted(got)}, expected {sorted(expected)}"
            )
            assert len(got) == len(set(got)), f"find({name}) returned duplicates: {got}"
            assert page.next_cursor is None, f"find({name}, limit=None) returned a next_cursor"
        page = await store.find(RunQuery())
        assert len(page.items) == len(_QUERY_RUNS), "find() with the default limit (50) lost runs"
        for run in page.items:
            _check(run, make_doc(run.id, **_QUERY_RUNS[run.id]), f"find() returned {run.id}")

    @clause
    async def test_find_sorts_by_requested_field_with_id_tiebreak(self, stores: Stores) -> None:
        """find: sorts by query.sort (created_at/updated_at, `-` descending), ties by id."""
        store = stores.main
        for run_id, created, updated in (
            ("s-b", 1, 9),
            ("s-d", 2, 1),
            ("s-a", 1, 5),
            ("s-c", 0, 5),
        ):
            await _put(store, run_id, created_at=at(created), updated_at=at(updated))
        cases: list[tuple[SortKey, list[str]]] = [
            ("created_at", ["s-c", "s-a", "s-b", "s-d"]),
            ("-created_at", ["s-d", "s-b", "s-a", "s-c"]),
            ("updated_at", ["s-d", "s-a", "s-c", "s-b"]),
            ("-updated_at", ["s-b", "s-c", "s-a", "s-d"]),
        ]
        for sort, expected in cases:
            got = _ids((await store.find(RunQuery(sort=sort, limit=None))).items)
            assert got == expected, f"find(sort={sort!r}) returned {got}, expected {expected}"
        got = _ids((await store.find(RunQuery(limit=None))).items)
        assert got == cases[1][1], f"find() without sort returned {got}: default is -created_at"

    @clause
    async def test_find_pages_with_cursor(self, stores: Stores) -> None:
        """find: limit pages, next_cursor resumes after the last item; nothing lost or repeated."""
        store = stores.main
        docs = []
        for i, (created, updated) in enumerate(
            [(3, 1), (1, 1), (3, 2), (0, 5), (3, 1), (2, 9), (1, 0)]
        ):
            fields = {
                "created_at": at(created),
                "updated_at": at(updated),
                "workflow_id": "wf-a" if i % 3 else "wf-b",
            }
            docs.append(make_doc(f"p{(i * 5) % 7}", **fields))
            await _put(store, docs[-1]["id"], **fields)
        sorts: tuple[SortKey, ...] = ("created_at", "-created_at", "updated_at", "-updated_at")
        for sort in sorts:
            for limit in (1, 2, 3, 7, 50):
                for workflow in (None, "wf-a"):
                    query = RunQuery(sort=sort, limit=limit, workflow_id=workflow)
                    what = f"find(sort={sort!r}, limit={limit}, workflow_id={workflow!r})"
                    pages = await _all_pages(store, query, what)
                    got = [run_id for page in pages for run_id in page]
                    expected = [d["id"] for d in ordered(docs, query)]
                    assert got == expected, f"{what} paged through {pages}, expected {expected}"
                    short = [len(p) for p in pages[:-1] if len(p) != limit]
                    assert not short, f"{what}: a page before the last held {short[0]} runs"

    @clause
    async def test_count_agrees_with_filters(self, stores: Stores) -> None:
        """count: the number of runs find() would return across all pages; ignores limit/cursor."""
        store = stores.main
        await _seed_query_runs(store)
        for name, query, expected in _FILTER_CASES:
            for limit in (None, 1):
                got = await store.count(RunQuery(**{**_fields(query), "limit": limit}))
                assert got == len(expected), (
                    f"count({name}, limit={limit}) returned {got}, expected {len(expected)}"
                )
        page = await store.find(RunQuery(limit=2, sort="created_at"))
        got = await store.count(RunQuery(limit=2, cursor=page.next_cursor, sort="created_at"))
        assert got == len(_QUERY_RUNS), f"count() with a cursor returned {got}: ignore the cursor"

    @clause
    async def test_queries_compare_values_with_their_type(self, stores: Stores) -> None:
        """find: meta/context equality is typed: 1 never matches "1", 7 never matches "7".

        The same in count and delete.
        """
        store = stores.main
        await _put(store, "typed-int", context={"n": 1}, meta={"v": 7})
        await _put(store, "typed-str", context={"n": "1"}, meta={"v": "7"})
        await _put(store, "typed-other", context={"n": 2}, meta={"v": "x"})
        cases: list[tuple[str, RunQuery, list[str]]] = [
            ("context={'n': 1}", RunQuery(context={"n": 1}), ["typed-int"]),
            ("context={'n': '1'}", RunQuery(context={"n": "1"}), ["typed-str"]),
            ("meta={'v': 7}", RunQuery(meta={"v": 7}), ["typed-int"]),
            ("meta={'v': '7'}", RunQuery(meta={"v": "7"}), ["typed-str"]),
            ("context={'n': '2'}", RunQuery(context={"n": "2"}), []),
        ]
        for name, query, expected in cases:
            got = _ids((await store.find(RunQuery(**{**_fields(query), "limit": None}))).items)
            assert got == expected, f"find({name}) returned {got}, expected {expected}"
            counted = await store.count(query)
            assert counted == len(expected), f"count({name}) returned {counted}"
        deleted = await store.delete(RunQuery(context={"n": "1"}))
        assert deleted == 1, f"delete(context={{'n': '1'}}) returned {deleted}, expected 1"
        left = sorted(_ids((await store.find(RunQuery(limit=None))).items))
        assert left == ["typed-int", "typed-other"], f"after the delete the store holds {left}"

    @clause
    async def test_delete_removes_only_matching_runs(self, stores: Stores) -> None:
        """delete: removes exactly the matching runs (limit ignored) and returns how many."""
        store = stores.main
        await _seed_query_runs(store)
        cleanup = RunQuery(
            status=[RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED],
            updated_before=at(100),
            limit=1,
        )
        deleted = await store.delete(cleanup)
        assert deleted == 2, f"the cleanup delete() returned {deleted}, expected 2 (q4, q6)"
        assert await store.delete(RunQuery(run_ids=["nope"])) == 0, "delete() of nothing"
        deleted = await store.delete(RunQuery(workflow_id="wf-c", sort="created_at"))
        assert deleted == 2, f"delete(workflow_id='wf-c') returned {deleted}, expected 2"
        left = sorted(_ids((await store.find(RunQuery(limit=None))).items))
        assert left == ["q1", "q2", "q3", "q8"], f"after the deletes the store holds {left}"
        for run_id in ("q4", "q5", "q6", "q7"):
            assert await store.get(run_id) is None, f"deleted run {run_id} is still readable"
        for run_id in left:
            _check(await store.get(run_id), make_doc(run_id, **_QUERY_RUNS[run_id]), "kept run")

    @clause
    async def test_delete_agrees_with_every_filter(self, stores: Stores) -> None:
        """delete: each RunQuery filter, empty lists included, deletes exactly what find selects.

        Every case ``find`` and ``count`` are checked with, on a freshly seeded
        store: ``run_ids=[]``, ``workflow_id=[]`` and ``status=[]`` delete nothing.
        """
        store = stores.main
        for name, query, expected in _FILTER_CASES:
            await _seed_query_runs(store)
            deleted = await store.delete(RunQuery(**{**_fields(query), "limit": 1}))
            assert deleted == len(expected), (
                f"delete({name}) returned {deleted}, expected {len(expected)}"
            )
            left = set(_ids((await store.find(RunQuery(limit=None))).items))
            kept = set(_QUERY_RUNS) - expected
            assert left == kept, (
                f"delete({name}) left {sorted(left)}, expected {sorted(kept)} "
                f"(deleted too much: {sorted(kept - left)}; too little: {sorted(left - kept)})"
            )
            if left:
                assert await store.delete(RunQuery(run_ids=sorted(left))) == len(left)

    # -- errors and lifecycle ----------------------------------------------------------

    @clause
    async def test_unknown_ids_raise_documented_errors(self, stores: Stores) -> None:
        """errors: unknown ids give the documented results, never a backend error.

        get → None; transition → WorkflowNotFoundError; heartbeat →
        LeaseLostError; find/count/delete by id → nothing.
        """
        store = stores.main
        await _put(store, "run-1")
        assert await store.get("missing") is None, "get() of an unknown id"
        await _raises(
            WorkflowNotFoundError,
            store.transition("missing", 0, {"paused": True}),
            "transition() of an unknown run",
        )
        await _raises(
            LeaseLostError,
            store.heartbeat("missing", "w1", T0, LEASE),
            "heartbeat() of an unknown run",
        )
        query = RunQuery(run_ids=["missing"])
        page = await store.find(query)
        assert page.items == [] and page.next_cursor is None, "find() of an unknown id"
        assert await store.count(query) == 0, "count() of an unknown id"
        assert await store.delete(query) == 0, "delete() of an unknown id"
        assert await store.claim("w1", T0, LEASE, 10, set()) == [], "claim(workflows=set())"
        assert await store.count(RunQuery()) == 1, "an operation on an unknown id changed the store"

    @clause
    async def test_backend_errors_are_translated(self, stores: Stores) -> None:
        """errors: odd ids and values work or are refused cleanly, never a backend exception.

        Quotes, unicode, ``$`` and ``.`` in ids must work. Values a backend may
        be unable to keep (integers beyond 64 bits, NUL characters, keys with
        ``.`` or ``$``) must be stored exactly or refused with a
        ``streamline_core.errors`` error.
        """
        store = stores.main
        odd_ids = [
            'it\'s "quoted" %_*?[];--',
            "ünï-cødé-✓-日本",
            "$dollar",
            "a.b.c",
            "x" * 200,
            " spaced ",
        ]
        for i, run_id in enumerate(odd_ids):
            run = await _put(store, run_id, meta={"key with space": i, "ключ": "значение"})
            await _stored(store, observe(run), f"create({run_id!r})")
            (claimed,) = await store.claim("w1", T0, LEASE, 1, {"wf"})
            assert claimed.id == run_id, f"claim() returned {claimed.id!r}, not {run_id!r}"
            await store.heartbeat(run_id, "w1", at(1), LEASE)
            moved = await store.transition(run_id, claimed.revision, {"status": "done"}, "w1")
            await _stored(store, observe(moved), f"transition({run_id!r})")
            page = await store.find(RunQuery(run_ids=[run_id]))
            assert _ids(page.items) == [run_id], f"find(run_ids=[{run_id!r}])"
            by_meta = await store.count(RunQuery(meta={"key with space": i}))
            assert by_meta == 1, f"count(meta={{'key with space': {i}}}) returned {by_meta}"
        removed = await store.delete(RunQuery(run_ids=odd_ids))
        assert removed == len(odd_ids), f"delete() of the odd ids returned {removed}"

        # Values a backend may be unable to keep: stored exactly, or refused cleanly.
        hard_values: list[tuple[str, dict[str, Any]]] = [
            ("an int beyond 64 bits", {"context": {"big": 2**70}}),
            ("a NUL character", {"context": {"nul": "a\x00b"}}),
            ("a key with a dot", {"meta": {"a.b": 1}}),
            ("a key starting with $", {"meta": {"$set": 1}}),
        ]
        for i, (what, fields) in enumerate(hard_values):
            run = _run(f"hard-{i}", **fields)
            try:
                stored, _ = await store.create(run)
            except WorkflowError:
                continue  # refused with a streamline_core error: allowed
            _check(stored, observe(run), f"create() of a run with {what} returned")
            await _stored(store, observe(run), f"create() of a run with {what}")

    @clause
    async def test_close_is_idempotent(self, stores: Stores) -> None:
        """close: releases resources and may be called again without error."""
        await _put(stores.main, "run-1")
        for handle in reversed(stores.all):
            await handle.close()
            await handle.close()

    @clause
    async def test_second_handle_sees_the_same_data(self, stores: Stores) -> None:
        """second handle: writes through one connection are seen, leased and fenced by the other.

        Runs only with ``Capabilities.second_handle``.
        """
        if len(stores.all) < 2:
            raise unittest.SkipTest("the harness has no second handle (Capabilities.second_handle)")
        a, b = stores.all[0], stores.all[1]
        created = await _put(a, "run-1")
        _check(await b.get("run-1"), observe(created), "create() on A, get() on B")
        (claimed,) = await b.claim("w-b", T0, LEASE, 10, {"wf"})
        assert await a.claim("w-a", at(1), LEASE, 10, {"wf"}) == [], (
            "a run leased through B was claimed through A"
        )
        await _raises(
            ConflictError,
            a.transition("run-1", claimed.revision, {"status": "done"}, owner="w-a"),
            "transition() on A by a non-owner of B's lease",
        )
        moved = await a.transition("run-1", claimed.revision, {"context.k": 1}, owner="w-b")
        await _raises(
            ConflictError,
            b.transition("run-1", claimed.revision, {"context.k": 2}, owner="w-b"),
            "transition() on B with the revision A already moved past",
        )
        _check(await b.get("run-1"), observe(moved), "transition() on A, get() on B")
        assert await b.count(RunQuery(context={"k": 1})) == 1, "count() on B after A's write"
        assert await b.delete(RunQuery(run_ids=["run-1"])) == 1, "delete() on B"
        assert await a.get("run-1") is None, "delete() on B, get() on A still finds the run"


def iter_clauses(cls: type[Any]) -> Iterator[tuple[str, str]]:
    """``(method name, first docstring line)`` of every clause of ``cls``."""
    for name in clause_names(cls):
        doc = (getattr(cls, name).__doc__ or "").strip().splitlines()
        yield name, doc[0] if doc else name
