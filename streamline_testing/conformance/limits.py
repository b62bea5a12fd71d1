"""Conformance of the flow-control claim (``claim_limited``): slots, revocation, rate windows.

:class:`FlowControlClauses` is mixed into
:class:`~streamline_testing.conformance.StoreContract`, so its clauses run
with every other clause. Most are example-based; the last one drives
:class:`FlowControlMachine`, a hypothesis state machine in which several
workers claim *concurrently* (``asyncio.gather``), heartbeat (also after
their leases expired), release into waiting, finish, crash and let time
pass, and which checks after every step, from the store's own answers:

* **slots** — no bucket ever has more than its limit of live leases;
* **no starvation** — a claim with room to spare takes exactly every free
  slot there is (so a slot freed by a release or by lease expiry is taken);
* **rate windows** — no window of ``period`` seconds holds more than
  ``limit`` begins of one rate bucket, and a claim with room begins exactly
  as many as the window allows;
* **waiting runs hold no slot** — they are not counted by the two above.

A store without ``claim_limited`` skips these clauses (the engine refuses
limited workflows on it).
"""

from __future__ import annotations

import asyncio
import itertools
import unittest
from collections.abc import Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from streamline_core.errors import ConflictError, LeaseLostError, WorkflowError
from streamline_core.run import WorkflowRun
from streamline_core.store import RunQuery, Store
from streamline_testing.conformance._clauses import _CLAUSE_MARK, Stores, clause
from streamline_testing.conformance._support import LEASE, T0, GuardedStore, make_doc
from streamline_testing.conformance.harness import StoreHarness

__all__ = ["FlowControlClauses", "FlowControlMachine", "BUCKETS"]

_T = TypeVar("_T")
WF = "wf-limited"
BUCKETS: dict[str, dict[str, Any]] = {
    "c2": {"concurrency_key": "c2", "concurrency_limit": 2},
    "c1": {"concurrency_key": "c1", "concurrency_limit": 1},
    "r2": {"rate_key": "r2", "rate_limit": 2, "rate_period": 30.0},
}
"""The buckets the machine uses: two slot buckets and one rate bucket (2 begins / 30 s)."""


def _has_limits(store: Any) -> bool:
    return callable(getattr(store, "claim_limited", None))


def limited_run(run_id: str, bucket: str, **fields: Any) -> WorkflowRun:
    """A due, unleased running run of ``WF`` in ``bucket`` (see :data:`BUCKETS`)."""
    return WorkflowRun.model_validate(make_doc(run_id, workflow_id=WF, **BUCKETS[bucket], **fields))


def live_leases(runs: list[WorkflowRun], now: datetime, bucket: str) -> int:
    """Runs of slot ``bucket`` holding a live lease at ``now``."""
    return sum(
        1
        for r in runs
        if r.concurrency_key == bucket and r.lease is not None and r.lease.expires_at > now
    )


def _pick(data: st.DataObject, items: list[_T]) -> _T:
    # Racing claims on a real server split runs between workers differently on
    # each replay, so the choices are drawn from a range that does not depend on
    # them (hypothesis requires the same draws when it replays an example).
    return items[data.draw(st.integers(0, 10_000)) % len(items)]


def _claimable(r: WorkflowRun, now: datetime) -> bool:
    return (
        r.status.value in ("draft", "running", "waiting")
        and r.next_run_at is not None
        and r.next_run_at <= now
        and not r.paused
        and (r.lease is None or r.lease.expires_at <= now)
    )


class FlowControlMachine(RuleBasedStateMachine):
    """Several workers claiming limited runs at once; invariants read from the store.

    Built by :meth:`FlowControlClauses.test_flow_control_state_machine` with the
    harness to use (``harness`` class attribute set on a subclass).
    """

    harness: Any = None

    def __init__(self) -> None:
        super().__init__()
        self._loop = asyncio.new_event_loop()
        self.raw: Store = self._call(self.harness.make_store())
        self.store = GuardedStore(self.raw)
        self.now = T0
        self.ids = itertools.count()
        self.holders: dict[str, str] = {}  # run id -> the worker a claim gave it to
        self.begins: dict[str, list[datetime]] = {"r2": []}

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self._loop.run_until_complete(coro)

    def teardown(self) -> None:
        """Dispose of the store and close the loop."""
        try:
            self._call(self.harness.dispose(self.raw))
        finally:
            self._loop.close()

    def _runs(self) -> list[WorkflowRun]:
        return self._call(self.store.find(RunQuery(workflow_id=WF, limit=None))).items

    def _took(self, runs: list[WorkflowRun], worker: str, started: dict[str, bool]) -> None:
        for r in runs:
            assert r.lease is not None and r.lease.owner == worker, (
                f"claim_limited by {worker} returned run {r.id} not leased to it"
            )
            assert r.concurrency_key is not None or r.rate_key is not None
            self.holders[r.id] = worker
            if r.rate_key is not None and not started[r.id]:
                assert r.began_at == self.now, f"run {r.id} began but began_at is {r.began_at}"
                self.begins[r.rate_key].append(self.now)

    # -- rules ----------------------------------------------------------------------

    @rule(bucket=st.sampled_from(sorted(BUCKETS)), n=st.integers(1, 3))
    def create(self, bucket: str, n: int) -> None:
        for _ in range(n):
            run = limited_run(f"{bucket}-{next(self.ids):03d}", bucket, next_run_at=self.now)
            self._call(self.store.create(run))

    @rule(
        workers=st.lists(st.sampled_from(["w1", "w2", "w3"]), min_size=2, max_size=3),
        limit=st.integers(1, 3),
    )
    def racing_claims(self, workers: list[str], limit: int) -> None:
        """Several workers claim at the same instant, concurrently."""
        before = {r.id: r.began_at is not None for r in self._runs()}

        async def race() -> list[list[WorkflowRun]]:
            calls = [self.store.claim_limited(w, self.now, LEASE, limit, [WF]) for w in workers]
            return list(await asyncio.gather(*calls))

        for worker, got in zip(workers, self._call(race()), strict=True):
            self._took(got, worker, before)

    @rule()
    def claim_everything_free(self) -> None:
        """A claim with room to spare takes every free slot and every allowed begin."""
        runs = self._runs()
        before = {r.id: r.began_at is not None for r in runs}
        expected: dict[str, int] = {}
        for name, spec in BUCKETS.items():
            mine = [r for r in runs if (r.concurrency_key or r.rate_key) == name]
            ready = [r for r in mine if _claimable(r, self.now)]
            if "concurrency_limit" in spec:
                room = spec["concurrency_limit"] - live_leases(runs, self.now, name)
                expected[name] = min(max(room, 0), len(ready))
            else:
                since = self.now - timedelta(seconds=spec["rate_period"])
                begun = sum(1 for t in self.begins[name] if since < t <= self.now)
                fresh = [r for r in ready if r.began_at is None]
                room = max(spec["rate_limit"] - begun, 0)
                expected[name] = min(room, len(fresh)) + (len(ready) - len(fresh))
        got = self._call(self.store.claim_limited("sweeper", self.now, LEASE, 100, [WF]))
        self._took(got, "sweeper", before)
        granted = {name: 0 for name in BUCKETS}
        for r in got:
            granted[r.concurrency_key or r.rate_key or ""] += 1
        assert granted == expected, (
            f"a claim with room for 100 leased {granted} per bucket; the free slots and rate "
            f"windows allowed exactly {expected} (a freed slot must be taken, no more)"
        )

    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        """The worker a claim gave a run to heartbeats it, also after its lease expired."""
        if not self.holders:
            return
        run_id = _pick(data, sorted(self.holders))
        try:
            self._call(self.store.heartbeat(run_id, self.holders[run_id], self.now, LEASE))
        except LeaseLostError:
            del self.holders[run_id]

    @rule(data=st.data(), finish=st.booleans())
    def release(self, data: st.DataObject, finish: bool) -> None:
        """A holder ends its step: the run waits (holding no slot) or is done."""
        if not self.holders:
            return
        run_id = _pick(data, sorted(self.holders))
        run = self._call(self.store.get(run_id))
        assert run is not None
        patch: dict[str, Any] = {"lease": None, "next_run_at": None}
        patch["status"] = "done" if finish else "waiting"
        try:
            self._call(self.store.transition(run_id, run.revision, patch, self.holders[run_id]))
        except ConflictError:
            pass  # its lease was revoked or taken over meanwhile
        del self.holders[run_id]

    @rule(data=st.data())
    def wake(self, data: st.DataObject) -> None:
        """A client makes a waiting run due again (no lease: only claims lease limited runs)."""
        waiting = [r for r in self._runs() if r.status.value == "waiting"]
        if not waiting:
            return
        run = _pick(data, waiting)
        patch = {"status": "running", "next_run_at": self.now}
        try:
            self._call(self.store.transition(run.id, run.revision, patch))
        except WorkflowError:
            pass

    @rule(worker=st.sampled_from(["w1", "w2", "w3"]))
    def crash(self, worker: str) -> None:
        """A worker dies: it stops heartbeating; its leases expire on their own."""
        for run_id in [r for r, w in self.holders.items() if w == worker]:
            del self.holders[run_id]

    @rule(seconds=st.sampled_from([1, 5, 10, 31]))
    def advance(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def no_bucket_exceeds_its_slots(self) -> None:
        runs = self._runs()
        for name, spec in BUCKETS.items():
            if "concurrency_limit" in spec:
                live = live_leases(runs, self.now, name)
                assert live <= spec["concurrency_limit"], (
                    f"bucket {name} has {live} live leases at once; its limit is "
                    f"{spec['concurrency_limit']}"
                )

    @invariant()
    def no_rate_window_holds_too_many_begins(self) -> None:
        for name, spec in BUCKETS.items():
            if "rate_limit" not in spec:
                continue
            times = self.begins[name]
            period = timedelta(seconds=spec["rate_period"])
            for t in times:
                n = sum(1 for u in times if t - period < u <= t)
                assert n <= spec["rate_limit"], (
                    f"{n} runs of rate bucket {name} began within {spec['rate_period']} s "
                    f"(limit {spec['rate_limit']})"
                )


class FlowControlClauses(StoreHarness):
    """Flow-control clauses, mixed into ``StoreContract`` (see the module docstring)."""

    def _limited_store(self, stores: Any) -> GuardedStore:
        store: GuardedStore = stores.main
        if not _has_limits(store.inner):
            raise unittest.SkipTest("the store has no claim_limited (limited workflows refused)")
        return store

    @clause
    async def test_limited_claim_keeps_each_bucket_within_its_slots(self, stores: Stores) -> None:
        """claim_limited: at most concurrency_limit runs of a bucket hold a live lease.

        Flow-control operation, rule 2: the runs leased by the call itself count.
        """
        store = self._limited_store(stores)
        for i in range(3):
            await store.create(limited_run(f"c2-{i}", "c2"))
        for i in range(2):
            await store.create(limited_run(f"c1-{i}", "c1"))
        got = await store.claim_limited("w1", T0, LEASE, 10, [WF])
        keys = sorted(r.concurrency_key or "" for r in got)
        assert keys == ["c1", "c2", "c2"], (
            f"claim_limited leased buckets {keys}; slots are c2:2 c1:1"
        )
        again = await store.claim_limited("w2", T0, LEASE, 10, [WF])
        assert again == [], f"every slot is taken, yet w2 got {[r.id for r in again]}"

    @clause
    async def test_plain_claim_never_leases_a_limited_run(self, stores: Stores) -> None:
        """claim: never leases a run with a concurrency or rate key; claim_limited only those."""
        store = self._limited_store(stores)
        await store.create(limited_run("lim", "c2"))
        await store.create(limited_run("rate", "r2"))
        await store.create(WorkflowRun.model_validate(make_doc("plain", workflow_id=WF)))
        got = await store.claim("w1", T0, LEASE, 10, [WF])
        assert [r.id for r in got] == ["plain"], f"claim leased {[r.id for r in got]}"
        limited = await store.claim_limited("w1", T0, LEASE, 10, [WF])
        assert sorted(r.id for r in limited) == ["lim", "rate"]

    @clause
    async def test_a_full_bucket_does_not_hold_back_another(self, stores: Stores) -> None:
        """claim_limited: a run whose bucket is full is skipped; the next one is taken."""
        store = self._limited_store(stores)
        await store.create(limited_run("holder", "c1"))
        assert len(await store.claim_limited("w1", T0, LEASE, 1, [WF])) == 1
        await store.create(limited_run("blocked", "c1", priority=5))
        await store.create(limited_run("other", "c2"))
        got = await store.claim_limited("w2", T0, LEASE, 1, [WF])
        assert [r.id for r in got] == ["other"], f"claim_limited(limit=1) leased {got}"
        blocked = await store.get("blocked")
        assert blocked is not None and blocked.lease is None and blocked.revision == 0

    @clause
    async def test_an_expired_keyed_lease_is_revoked_and_its_slot_reused(
        self, stores: Stores
    ) -> None:
        """claim_limited: an expired lease of a keyed run is revoked; its owner cannot revive it.

        Rule 1: ``lease = null``, ``revision + 1``, ``recoveries + 1`` for a running run;
        the owner's heartbeat then raises LeaseLostError and its write ConflictError.
        """
        store = self._limited_store(stores)
        await store.create(limited_run("dead", "c1"))
        (held,) = await store.claim_limited("w1", T0, LEASE, 1, [WF])
        later = T0 + timedelta(seconds=LEASE + 1)
        await store.create(limited_run("next", "c1", priority=1, next_run_at=later))
        got = await store.claim_limited("w2", later, LEASE, 1, [WF])
        assert [r.id for r in got] == ["next"], f"the expired slot was not reused: {got}"
        dead = await store.get("dead")
        assert dead is not None and dead.lease is None, "the expired lease was not revoked"
        assert dead.recoveries == 1 and dead.revision == held.revision + 1
        try:
            await store.heartbeat("dead", "w1", later, LEASE)
        except LeaseLostError:
            pass
        else:
            raise AssertionError("the owner of a revoked lease heartbeat it back to life")
        try:
            await store.transition("dead", held.revision, {"status": "done"}, owner="w1")
        except ConflictError:
            pass
        else:
            raise AssertionError("the owner of a revoked lease could still write")

    @clause
    async def test_rate_windows_limit_begins_and_delay_the_rest(self, stores: Stores) -> None:
        """claim_limited: at most rate_limit runs of a rate bucket begin per rate_period.

        Rule 3: leasing sets ``began_at``; a run that began is never rate-limited again.
        """
        store = self._limited_store(stores)
        for i in range(3):
            await store.create(limited_run(f"r-{i}", "r2"))
        first = await store.claim_limited("w1", T0, LEASE, 10, [WF])
        began = sorted((r.id, str(r.began_at)) for r in first)
        assert len(first) == 2 and all(r.began_at == T0 for r in first), (
            f"3 runs due in a 2-per-30 s bucket: the first claim began {began}"
        )
        for r in first:
            await store.transition(r.id, r.revision, {"lease": None}, owner="w1")
        t10 = T0 + timedelta(seconds=10)
        again = await store.claim_limited("w1", t10, LEASE, 10, [WF])
        assert sorted(r.id for r in again) == sorted(r.id for r in first), (
            "runs that began were rate-limited again, or a third began within the window"
        )
        t31 = T0 + timedelta(seconds=31)
        late = await store.claim_limited("w1", t31, LEASE, 10, [WF])
        assert [r.id for r in late] == ["r-2"] and late[0].began_at == t31

    @clause
    async def test_racing_limited_claims_never_exceed_the_limit(self, stores: Stores) -> None:
        """claim_limited: concurrent claims of one bucket lease at most its limit in all."""
        store = self._limited_store(stores)
        for i in range(5):
            await store.create(limited_run(f"c1-{i}", "c1"))
        width = self.capabilities.race_width
        results = await asyncio.gather(
            *(stores.pick(i).claim_limited(f"w{i}", T0, LEASE, 2, [WF]) for i in range(width))
        )
        leased = [r.id for got in results for r in got]
        assert len(leased) == 1, f"{width} racing claims leased {leased} from a 1-slot bucket"

    @clause
    async def test_limited_claim_of_one_run(self, stores: Stores) -> None:
        """claim_limited: with run_id it leases that run only, and only within its slots."""
        store = self._limited_store(stores)
        await store.create(limited_run("a", "c1"))
        await store.create(limited_run("b", "c1", next_run_at=T0 + timedelta(seconds=-5)))
        got = await store.claim_limited("w1", T0, LEASE, 1, [WF], run_id="a")
        assert [r.id for r in got] == ["a"]
        assert await store.claim_limited("w1", T0, LEASE, 1, [WF], run_id="b") == []

    def test_flow_control_state_machine(self) -> None:
        """claim_limited: racing claimers, heartbeats, releases, crashes keep slots and windows.

        A hypothesis state machine (see the module docstring): after every step
        no bucket exceeds its slots, no rate window its begins, and a claim with
        room takes exactly every free slot (no starvation).
        """
        if not _has_limits(self._call_make()):
            raise unittest.SkipTest("the store has no claim_limited (limited workflows refused)")
        machine = type("Machine", (FlowControlMachine,), {"harness": self})
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=min(settings().max_examples, 25),
                stateful_step_count=30,
                deadline=None,
            ),
        )

    def _call_make(self) -> Any:
        loop = asyncio.new_event_loop()
        try:
            store = loop.run_until_complete(self.make_store())
            loop.run_until_complete(self.dispose(store))
            return store
        finally:
            loop.close()


setattr(FlowControlClauses.test_flow_control_state_machine, _CLAUSE_MARK, True)
