"""``StoreStateMachine``: a store checked against an independent model, step by step.

Hypothesis drives several workers and many runs through random sequences of
store operations — creates (with idempotency keys, alone and racing), claims
(alone and racing), heartbeats, owner writes, client writes (pause, cancel,
finish, wait, wake), stale and foreign writes, clock advances, worker crashes
(the worker forgets its leases, which then expire and are taken over),
queries and deletes. Every result is compared with the reference model in
``_model`` — plain dicts, written from the contract, sharing no code with any
store — and after every step the whole store must equal the model.

Checked, among others: a transition succeeds exactly when the revision
matches and (with ``owner``) the lease is the owner's; claims return exactly
the model's claimable runs in contract order; a heartbeat succeeds exactly for
the lease owner and never changes the revision; revisions go up by one per
write; ``find`` pages and ``count`` agree with the model.

Use::

    class MyStoreMachine(MyHarness, StoreStateMachine):
        pass

    TestMyStoreMachine = MyStoreMachine.TestCase   # collected by plain pytest

Data generation never depends on the store's answers (held runs are picked
by index; every create adds a fixed number of ids to the ``runs`` bundle,
including ids it did not insert), so concurrent stores whose races come out
differently between runs can still be replayed and shrunk.

Each machine instance creates its own event loop and runs every store call
with ``loop.run_until_complete``, so no asyncio plugin is involved. Settings
come from the loaded hypothesis profile (the ``TestCase`` adds only
``deadline=None``); set ``TestMyStoreMachine.settings`` to change them.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from hypothesis import currently_in_test_context, event
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from streamline_core.errors import (
    ConflictError,
    LeaseLostError,
    WorkflowError,
    WorkflowNotFoundError,
)
from streamline_core.run import RunStatus, WorkflowRun
from streamline_core.store import UNSET, RunQuery, SortKey, Store
from streamline_testing.conformance._model import (
    Doc,
    active_with_key,
    apply_patch_to_doc,
    claim_order,
    claimable,
    expected_claim,
    matches,
    ordered,
    take_lease,
)
from streamline_testing.conformance._support import (
    LEASE,
    T0,
    GuardedStore,
    diff_docs,
    make_doc,
    observe,
    step_doc,
)
from streamline_testing.conformance.harness import StoreHarness

__all__ = ["StoreStateMachine"]

_T = TypeVar("_T")

WORKFLOWS = ("wf-a", "wf-b")
TENANTS = (None, "t1", "t2", "")  # "" is a tenant, not "no tenant"
STATUSES = ("draft", "running", "waiting", "done", "failed", "cancelled")
EVENTS = ("e1", "e2")
HOOKS = ("h1", "h2")
KEYS = ("k1", "k2")
SORTS: tuple[SortKey, ...] = ("created_at", "-created_at", "updated_at", "-updated_at")

# Stored JSON values, and the values queries look for. Queries never ask for
# None, lists or bools: equality on those differs between databases in ways
# the contract does not settle (see docs/conformance.md). The strings "1" and
# "7" look like the integers 1 and 7 and must never match them.
# Stored dict values are replaced whole by a patch, never merged. Flat samples,
# so that look-alikes come up about as often as anything else.
_SCALARS: list[Any] = [0, 1, 2, 7, "x", "y", "1", "7"]
_VALUES = st.sampled_from([None, *_SCALARS, {"x": 1}, {"y": [2]}])
_QUERY_VALUES = st.sampled_from(_SCALARS)

# One filter alone, so that it decides the result (in a random query several
# filters usually AND down to nothing): typed values, the "" tenant, keys.
_ONE_FILTER = st.one_of(
    st.tuples(st.just("meta"), st.sampled_from(["user", "team"]), _QUERY_VALUES),
    st.tuples(st.just("context"), st.sampled_from(["a", "b"]), _QUERY_VALUES),
    st.tuples(st.just("tenant_id"), st.none(), st.sampled_from(["", "t1"])),
    st.tuples(st.just("idempotency_key"), st.none(), st.sampled_from(KEYS)),
)


def _wait(kind: str, *, event: str | None = None, hook: str | None = None) -> Doc:
    return {
        "kind": kind,
        "reason": None,
        "data": None,
        "event": event,
        "until": None,
        "hook_token_hash": hook,
    }


_WAITS = st.one_of(
    st.none(),
    st.sampled_from(EVENTS).map(lambda e: _wait("event", event=e)),
    st.sampled_from(HOOKS).map(lambda h: _wait("human", hook=h)),
)


@dataclass(frozen=True)
class RunSpec:
    """What the machine draws to create a run (times are offsets from the machine's now)."""

    label: str
    workflow_id: str
    tenant_id: str | None
    status: str
    paused: bool
    priority: int
    due: int | None
    key: str | None
    wait: Doc | None
    meta: dict[str, Any]
    context: dict[str, Any]
    version: str = "1"


# Numbers whose text sorts differently ("9" > "10", "-2" > "-1").
_PRIORITIES = st.sampled_from([-2, -1, 0, 0, 1, 2, 9, 10])

_RUN_SPECS = st.builds(
    RunSpec,
    label=st.sampled_from("abcdef"),
    version=st.sampled_from(["1", "1", "2"]),
    workflow_id=st.sampled_from(WORKFLOWS),
    tenant_id=st.sampled_from(TENANTS),
    status=st.sampled_from(("running", "running", "waiting", "draft", "done")),
    paused=st.sampled_from([False, False, False, True]),
    priority=_PRIORITIES,
    due=st.sampled_from([0, -20, -1, 0, 0, 15, 45, None]),
    key=st.one_of(st.none(), st.sampled_from(KEYS)),
    wait=_WAITS,
    meta=st.dictionaries(st.sampled_from(["user", "team"]), _VALUES, max_size=2),
    context=st.dictionaries(st.sampled_from(["a", "b"]), _VALUES, max_size=2),
)

_PATCHES = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(STATUSES),
        "paused": st.booleans(),
        "next_run_at": st.one_of(st.none(), st.sampled_from([-10, 0, 20, 60])),
        "priority": _PRIORITIES,
        "lease": st.none(),
        "wait": _WAITS,
        "current_step_id": st.sampled_from(["s0", "s1"]),
        "context.a": st.one_of(_VALUES, st.just(UNSET)),
        "context.b": st.one_of(_VALUES, st.just(UNSET)),
        "meta.user": st.one_of(_VALUES, st.just(UNSET)),
        "steps.0": st.builds(
            lambda status, attempts, output: step_doc(
                "s0", status, attempts=attempts, output=output
            ),
            st.sampled_from(["pending", "running", "done", "failed"]),
            st.integers(0, 3),
            _VALUES,
        ),
        "steps.1.status": st.sampled_from(["pending", "running", "waiting", "done"]),
        "output": _VALUES,
    },
)

_QUERIES = st.fixed_dictionaries(
    {"sort": st.sampled_from(SORTS)},
    optional={
        "workflow_id": st.one_of(
            st.sampled_from(WORKFLOWS),
            st.lists(st.sampled_from((*WORKFLOWS, "wf-z")), max_size=2),
        ),
        "status": st.one_of(
            st.sampled_from(STATUSES), st.lists(st.sampled_from(STATUSES), max_size=3)
        ),
        "tenant_id": st.sampled_from(["t1", "t2", ""]),
        "meta": st.dictionaries(st.sampled_from(["user", "team"]), _QUERY_VALUES, max_size=2),
        "context": st.dictionaries(st.sampled_from(["a", "b"]), _QUERY_VALUES, max_size=1),
        "created_after": st.sampled_from([0, 30, 120]),  # seconds before now
        "created_before": st.sampled_from([0, 30, 120]),
        "updated_before": st.sampled_from([0, 30, 120]),
        "waiting_for_event": st.sampled_from(EVENTS),
        "hook_token_hash": st.sampled_from(HOOKS),
        "idempotency_key": st.sampled_from(KEYS),
    },
)

_CLIENT_ACTIONS = (
    "pause",
    "unpause",
    "cancel",
    "complete",
    "fail",
    "wait_event",
    "wait_hook",
    "wake",
    "release",
    "deliver",
)


class StoreStateMachine(StoreHarness, RuleBasedStateMachine):
    """A hypothesis state machine checking a store against an independent model.

    Mix your harness in front of it and use the generated ``TestCase``::

        class MyStoreMachine(MyHarness, StoreStateMachine):
            pass

        TestMyStoreMachine = MyStoreMachine.TestCase

    With ``Capabilities.second_handle`` the workers are spread over two
    handles, so every race and every read also crosses connections.
    """

    workers: Bundle[str] = Bundle("workers")
    runs: Bundle[str] = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        self.now: datetime = T0
        self.model: dict[str, Doc] = {}
        self.last_revision: dict[str, int] = {}
        self.memory: dict[str, dict[str, int]] = {}
        self._ids = itertools.count()
        self._touched: set[str] = set()
        self._raw: list[Store] = []
        self._loop = asyncio.new_event_loop()
        try:
            self._raw.append(self._call(self.make_store()))
            if self.capabilities.second_handle:
                self._raw.append(self._call(self.another_handle(self._raw[0])))
        except BaseException:
            self._shutdown()
            raise
        self.handles = [GuardedStore(s) for s in self._raw]

    # -- plumbing -------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self._loop.run_until_complete(coro)

    def _outcome(self, coro: Coroutine[Any, Any, _T]) -> tuple[_T | None, WorkflowError | None]:
        try:
            return self._call(coro), None
        except WorkflowError as exc:
            return None, exc

    def _shutdown(self) -> None:
        try:
            for store in reversed(self._raw):
                self._call(self.dispose(store))
        finally:
            self._raw = []
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def teardown(self) -> None:
        """Dispose of the stores and close this machine's event loop."""
        if not self._loop.is_closed():
            self._shutdown()

    def _handle(self, worker: str | None) -> GuardedStore:
        if worker is None:
            return self.handles[0]
        index = sorted(self.memory).index(worker) if worker in self.memory else 0
        return self.handles[index % len(self.handles)]

    def _agree(self, run: WorkflowRun | None, doc: Doc, what: str) -> None:
        assert run is not None, f"{what}: the store lost run {doc['id']}"
        got = observe(run)
        assert got == doc, f"{what}: store and model disagree on {doc['id']}: " + diff_docs(
            doc, got
        )

    def _wrote(self, run: WorkflowRun, doc: Doc, what: str) -> None:
        previous = self.last_revision.get(run.id, -1)
        assert run.revision > previous, (
            f"{what}: revision went from {previous} to {run.revision} (must strictly increase)"
        )
        self.last_revision[run.id] = run.revision
        self._agree(run, doc, what)
        self._touched.add(run.id)

    def _new_doc(self, spec: RunSpec, lease_owner: str | None) -> Doc:
        run_id = f"{spec.label}{next(self._ids):03d}"
        return make_doc(
            run_id,
            workflow_id=spec.workflow_id,
            workflow_version=spec.version,
            tenant_id=spec.tenant_id,
            status=spec.status,
            paused=spec.paused,
            priority=spec.priority,
            next_run_at=None if spec.due is None else self._at(spec.due),
            idempotency_key=spec.key,
            wait=spec.wait,
            meta=dict(spec.meta),
            context=dict(spec.context),
            lease=None
            if lease_owner is None
            else {"owner": lease_owner, "expires_at": self._at(LEASE)},
            created_at=self.now,
            updated_at=self.now,
            ended_at=self.now if spec.status == "done" else None,
        )

    def _at(self, seconds: float) -> datetime:
        return self.now + timedelta(seconds=seconds)

    def _apply_claim(self, worker: str, run: WorkflowRun, what: str) -> None:
        assert run.id in self.model, f"{what} returned {run.id}, which the model does not hold"
        doc = self.model[run.id]
        previous_owner = doc["lease"]["owner"] if doc["lease"] else None
        take_lease(doc, worker, self.now, LEASE)
        if previous_owner == worker and run.recoveries == doc["recoveries"] - 1:
            # Re-claiming one's *own* expired lease: the contract does not say
            # whether that is a "takeover", so either count is accepted.
            doc["recoveries"] -= 1
        self._wrote(run, doc, what)
        self.memory[worker][run.id] = run.revision

    def _materialize(self, patch: dict[str, Any]) -> dict[str, Any]:
        concrete = dict(patch)
        if isinstance(concrete.get("next_run_at"), int):
            concrete["next_run_at"] = self._at(concrete["next_run_at"])
        concrete["updated_at"] = self.now
        return concrete

    def _query(
        self, spec: dict[str, Any], run_ids: list[str] | None, limit: int | None
    ) -> RunQuery:
        fields: dict[str, Any] = {"sort": spec["sort"], "limit": limit, "run_ids": run_ids}
        for name in ("workflow_id", "tenant_id", "meta", "context"):
            if name in spec:
                fields[name] = spec[name]
        for name in ("waiting_for_event", "hook_token_hash", "idempotency_key"):
            if name in spec:
                fields[name] = spec[name]
        if "status" in spec:
            status = spec["status"]
            fields["status"] = (
                RunStatus(status) if isinstance(status, str) else [RunStatus(s) for s in status]
            )
        for name in ("created_after", "created_before", "updated_before"):
            if name in spec:
                fields[name] = self._at(-spec[name])
        return RunQuery(**fields)

    # -- workers and time -------------------------------------------------------------

    @initialize(target=workers)
    def start_workers(self) -> MultipleResults[str]:
        """Two workers exist from the start."""
        for worker in ("worker-0", "worker-1"):
            self.memory[worker] = {}
        return multiple("worker-0", "worker-1")

    @precondition(lambda self: len(self.memory) < 4)
    @rule(target=workers)
    def add_worker(self) -> str:
        """Another worker joins."""
        worker = f"worker-{len(self.memory)}"
        self.memory[worker] = {}
        return worker

    @rule(worker=workers)
    def crash(self, worker: str) -> None:
        """A worker dies: it forgets every lease and revision it knew; its leases stay stored."""
        self.memory[worker].clear()

    @rule(seconds=st.sampled_from([1, 10, 29, 30, 31, 90]))
    def advance_clock(self, seconds: int) -> None:
        """Time passes (leases expire, runs fall due)."""
        self.now = self._at(seconds)

    # -- create ------------------------------------------------------------------------

    @initialize(target=runs, specs=st.lists(_RUN_SPECS, min_size=3, max_size=6))
    def create_first_runs(self, specs: list[RunSpec]) -> MultipleResults[str]:
        """A few unleased runs exist from the start."""
        return multiple(*self._create(specs, None))

    @rule(
        target=runs,
        specs=st.lists(_RUN_SPECS, min_size=1, max_size=3),
        leased_to=st.one_of(st.none(), st.none(), workers),
    )
    def create(self, specs: list[RunSpec], leased_to: str | None) -> MultipleResults[str]:
        """create: new runs, maybe pre-leased (as ``start`` does); an active key returns its run."""
        return multiple(*self._create(specs, leased_to))

    def _create(self, specs: list[RunSpec], leased_to: str | None) -> list[str]:
        new: list[str] = []
        for spec in specs:
            doc = self._new_doc(spec, leased_to)
            holders = active_with_key(
                self.model.values(), spec.workflow_id, spec.tenant_id, spec.key
            )
            run, created = self._call(
                self._handle(leased_to).create(WorkflowRun.model_validate(doc))
            )
            if holders:
                assert created is False, (
                    f"create() inserted {doc['id']} although {sorted(holders)} is active with "
                    f"key {spec.key!r}"
                )
                assert run.id in holders, (
                    f"create() with key {spec.key!r} returned {run.id}, not its holder "
                    f"{sorted(holders)}"
                )
                self._agree(run, holders[run.id], "create() with an active key returned")
                new.append(doc["id"])  # never stored: later steps use it as an unknown id
                continue
            assert created is True, (
                f"create() of {doc['id']} returned created=False (run {run.id}); the model "
                "knows no active run with its key"
            )
            self.model[doc["id"]] = doc
            self._wrote(run, doc, "create()")
            new.append(doc["id"])
        return new

    @rule(
        target=runs,
        spec=_RUN_SPECS,
        key=st.sampled_from(KEYS),
        width=st.integers(2, 4),
    )
    def create_race(self, spec: RunSpec, key: str, width: int) -> MultipleResults[str]:
        """create: concurrent creates with one key; exactly one inserts, all return it."""
        status = spec.status if spec.status in ("draft", "running", "waiting") else "running"
        docs = [
            self._new_doc(spec, None) | {"idempotency_key": key, "status": status, "ended_at": None}
            for _ in range(width)
        ]
        holders = active_with_key(self.model.values(), spec.workflow_id, spec.tenant_id, key)

        async def race() -> list[tuple[WorkflowRun, bool]]:
            return list(
                await asyncio.gather(
                    *(
                        self.handles[i % len(self.handles)].create(WorkflowRun.model_validate(doc))
                        for i, doc in enumerate(docs)
                    )
                )
            )

        results = self._call(race())
        winners = [run for run, created in results if created]
        if holders:
            assert not winners, (
                f"racing creates inserted {[r.id for r in winners]} over {sorted(holders)}"
            )
            for run, _ in results:
                assert run.id in holders, f"a racing create() returned {run.id}, not a holder"
                self._agree(run, holders[run.id], "a racing create() with an active key returned")
            return multiple(*(d["id"] for d in docs))
        assert len(winners) == 1, (
            f"{len(winners)} of {width} concurrent creates with key {key!r} inserted a run"
        )
        winner = winners[0]
        doc = next(d for d in docs if d["id"] == winner.id)
        for run, created in results:
            if not created:
                assert run.id == winner.id, (
                    f"a losing create() returned {run.id}, not the winner {winner.id}"
                )
        self.model[doc["id"]] = doc
        self._wrote(winner, doc, "the winning create()")
        return multiple(*(d["id"] for d in docs))  # the losers' ids stay unknown

    @rule(run_id=runs)
    def create_existing_id(self, run_id: str) -> None:
        """create: an id that exists → ConflictError; a deleted id can be created again."""
        doc = make_doc(
            run_id,
            workflow_id="wf-a",
            next_run_at=self.now,
            created_at=self.now,
            updated_at=self.now,
        )
        result, error = self._outcome(self.handles[-1].create(WorkflowRun.model_validate(doc)))
        if run_id in self.model:
            assert isinstance(error, ConflictError), (
                f"create() of existing id {run_id} gave {result or error!r}, not ConflictError"
            )
            return
        assert error is None and result is not None and result[1] is True, (
            f"create() of deleted id {run_id} gave {error!r}: a deleted run must be gone"
        )
        self.model[run_id] = doc
        self.last_revision.pop(run_id, None)
        self._wrote(result[0], doc, "create() of a deleted id")

    # -- claim and heartbeat -------------------------------------------------------------

    @rule(
        worker=workers,
        limit=st.sampled_from([1, 2, 4, 0]),
        workflows=st.sampled_from(
            [
                WORKFLOWS,
                WORKFLOWS,
                ("wf-a",),
                ("wf-b", "wf-z"),
                (),
                {"wf-a": ("1",), "wf-b": ("1", "2")},
                {"wf-a": ("2",)},
            ]
        ),
        tenant=st.sampled_from([None, None, "t1", "t2", ""]),
    )
    def claim(
        self,
        worker: str,
        limit: int,
        workflows: tuple[str, ...] | dict[str, tuple[str, ...]],
        tenant: str | None,
    ) -> None:
        """claim: exactly the model's claimable runs, in contract order, up to limit."""
        expected = [
            d["id"] for d in expected_claim(self.model.values(), self.now, limit, workflows, tenant)
        ]
        got = self._call(
            self._handle(worker).claim(
                worker,
                self.now,
                LEASE,
                limit,
                dict(workflows) if isinstance(workflows, dict) else set(workflows),
                tenant,
            )
        )
        what = f"claim({worker}, limit={limit}, workflows={workflows!r}, tenant={tenant!r})"
        _note(f"claim: {min(len(got), 2)}{'+' if len(got) >= 2 else ''} runs")
        assert [r.id for r in got] == expected, (
            f"{what} returned {[r.id for r in got]}, the model says {expected}"
        )
        for run in got:
            self._apply_claim(worker, run, what)

    @rule(
        racers=st.lists(workers, min_size=2, max_size=3, unique=True),
        limit=st.integers(1, 3),
    )
    def claim_race(self, racers: list[str], limit: int) -> None:
        """claim: concurrent claims never share a run; each gets claimable runs in order."""
        candidates = {
            d["id"]: d for d in self.model.values() if claimable(d, self.now, WORKFLOWS, None)
        }

        async def race() -> list[list[WorkflowRun]]:
            return list(
                await asyncio.gather(
                    *(
                        self._handle(w).claim(w, self.now, LEASE, limit, set(WORKFLOWS))
                        for w in racers
                    )
                )
            )

        results = self._call(race())
        owner_of: dict[str, str] = {}
        for worker, got in zip(racers, results, strict=True):
            ids = [r.id for r in got]
            assert len(ids) <= limit, f"claim(limit={limit}) by {worker} returned {ids}"
            for run_id in ids:
                assert run_id in candidates, (
                    f"racing claim by {worker} returned {run_id}, which is not claimable"
                )
                assert run_id not in owner_of, (
                    f"{run_id} was claimed by both {owner_of[run_id]} and {worker} at once"
                )
                owner_of[run_id] = worker
            keys = [claim_order(candidates[i]) for i in ids]
            assert keys == sorted(keys), f"claim by {worker} returned {ids} out of contract order"
        if candidates:
            assert owner_of, f"no racing claim got any of the claimable {sorted(candidates)}"
        for worker, got in zip(racers, results, strict=True):
            for run in got:
                self._apply_claim(worker, run, f"racing claim by {worker}")

    @rule(
        worker=workers,
        pick=st.integers(0, 255),
        lease_for=st.sampled_from([LEASE, 1.0, 2.5, 90.0]),
    )
    def heartbeat_held(self, worker: str, pick: int, lease_for: float) -> None:
        """heartbeat: a worker extends a lease it believes it holds (the engine's path)."""
        run_id = self._held(worker, pick)
        if run_id is not None:
            self._heartbeat(worker, run_id, lease_for)

    def _held(self, worker: str, pick: int) -> str | None:
        # Which runs a worker holds depends on how races came out, which a
        # concurrent store does not repeat exactly: choose among them by index
        # rather than drawing from them, so that data generation never depends
        # on the store (hypothesis replays examples to shrink them).
        held = sorted(self.memory[worker])
        return held[pick % len(held)] if held else None

    @rule(worker=workers, run_id=runs, lease_for=st.sampled_from([1.0, LEASE, 2.5, 90.0]))
    def heartbeat(self, worker: str, run_id: str, lease_for: float) -> None:
        """heartbeat: succeeds exactly for lease.owner; extends the lease; revision unchanged."""
        self._heartbeat(worker, run_id, lease_for)

    def _heartbeat(self, worker: str, run_id: str, lease_for: float) -> None:
        doc = self.model.get(run_id)
        owns = doc is not None and doc["lease"] is not None and doc["lease"]["owner"] == worker
        status, error = self._outcome(
            self._handle(worker).heartbeat(run_id, worker, self.now, lease_for)
        )
        _note(f"heartbeat: {'owner' if owns else 'not the owner'}")
        if not owns:
            holder = doc["lease"] if doc else "deleted run"
            assert isinstance(error, LeaseLostError), (
                f"heartbeat({run_id}) by {worker} gave {status or error!r}; lease is {holder}: "
                "expected LeaseLostError"
            )
            return
        assert doc is not None
        assert error is None, f"heartbeat({run_id}) by its owner {worker} raised {error!r}"
        assert status == RunStatus(doc["status"]), (
            f"heartbeat({run_id}) returned {status!r}; the run is {doc['status']}"
        )
        doc["lease"] = {"owner": worker, "expires_at": self._at(lease_for)}
        self._touched.add(run_id)

    # -- writes --------------------------------------------------------------------------

    def _write(
        self, run_id: str, revision: int, patch: dict[str, Any], owner: str | None, what: str
    ) -> bool:
        """Transition and check "succeeded ⇔ revision matched and owner matched"."""
        doc = self.model.get(run_id)
        result, error = self._outcome(
            self._handle(owner).transition(run_id, revision, patch, owner=owner)
        )
        _note(f"{what.split('(')[0]}: {type(error).__name__ if error else 'applied'}")
        if doc is None:
            assert isinstance(error, WorkflowNotFoundError), (
                f"{what} of deleted run {run_id} gave {result or error!r}, "
                "not WorkflowNotFoundError"
            )
            return False
        revision_ok = doc["revision"] == revision
        owner_ok = owner is None or (doc["lease"] is not None and doc["lease"]["owner"] == owner)
        if not (revision_ok and owner_ok):
            why = (
                f"revision {revision} vs stored {doc['revision']}"
                if not revision_ok
                else f"owner {owner!r} vs lease {doc['lease']}"
            )
            assert isinstance(error, ConflictError), (
                f"{what} of {run_id} ({why}) gave {_brief(result) if result else error!r}; "
                "expected ConflictError"
            )
            return False
        after = copy.deepcopy(doc)
        apply_patch_to_doc(after, patch)
        assert error is None and result is not None, (
            f"{what} of {run_id} with the current revision {revision} and owner {owner!r} "
            f"(lease {doc['lease']}) raised {error!r}"
        )
        after["revision"] += 1
        self.model[run_id] = after
        self._wrote(result, after, what)
        return True

    @rule(
        worker=workers,
        run_id=runs,
        revision=st.sampled_from(["current", "believed", "believed", "stale", "ahead"]),
        as_owner=st.booleans(),
        patch=_PATCHES,
    )
    def transition(
        self, worker: str, run_id: str, revision: str, as_owner: bool, patch: dict[str, Any]
    ) -> None:
        """transition: a worker's write, maybe stale, maybe foreign; the model decides."""
        known = self.model[run_id]["revision"] if run_id in self.model else None
        fallback = self.last_revision.get(run_id, 0)
        current = known if known is not None else fallback
        expected_revision = {
            "current": current,
            "believed": self.memory[worker].get(run_id, current - 1),
            "stale": current - 1,
            "ahead": current + 1,
        }[revision]
        concrete = self._materialize(patch)
        owner = worker if as_owner else None
        what = f"transition(revision={revision}:{expected_revision}, owner={owner!r})"
        if self._write(run_id, expected_revision, concrete, owner, what) and as_owner:
            self.memory[worker][run_id] = self.model[run_id]["revision"]

    @rule(worker=workers, pick=st.integers(0, 255), patch=_PATCHES)
    def commit(self, worker: str, pick: int, patch: dict[str, Any]) -> None:
        """transition: a worker commits a run it claimed, with the revision it knows.

        The engine's path; fails exactly when someone wrote since or took the lease over.
        """
        run_id = self._held(worker, pick)
        if run_id is None:
            return
        concrete = self._materialize(patch)
        if self._write(run_id, self.memory[worker][run_id], concrete, worker, "commit"):
            self.memory[worker][run_id] = self.model[run_id]["revision"]
        else:
            del self.memory[worker][run_id]  # the engine drops a run it lost

    @rule(
        run_id=runs,
        action=st.sampled_from(_CLIENT_ACTIONS),
        event=st.sampled_from(EVENTS),
        stale=st.booleans(),
    )
    def client_write(self, run_id: str, action: str, event: str, stale: bool) -> None:
        """transition without owner: pause, cancel, finish, wait, wake, deliver (maybe stale)."""
        doc = self.model.get(run_id)
        revision = (doc["revision"] if doc else self.last_revision.get(run_id, 0)) - stale
        now = self.now
        patches: dict[str, dict[str, Any]] = {
            "pause": {"paused": True},
            "unpause": {"paused": False},
            "cancel": {"status": "cancelled", "ended_at": now},
            "complete": {"status": "done", "output": {"ok": True}, "ended_at": now, "lease": None},
            "fail": {
                "status": "failed",
                "error": {"code": "STEP_FAILED", "message": "boom", "step_id": "s0", "details": {}},
                "ended_at": now,
            },
            "wait_event": {
                "status": "waiting",
                "wait": _wait("event", event=event),
                "next_run_at": None,
                "lease": None,
            },
            "wait_hook": {
                "status": "waiting",
                "wait": _wait("human", hook=HOOKS[EVENTS.index(event)]),
                "next_run_at": self._at(60),
                "lease": None,
            },
            "wake": {"status": "running", "wait": None, "next_run_at": now},
            "release": {"lease": None},
            "deliver": {
                "mailbox": [
                    *(copy.deepcopy(doc["mailbox"]) if doc else []),
                    {"name": event, "data": {"n": 1}, "at": now},
                ]
            },
        }
        patch = {**patches[action], "updated_at": now}
        self._write(run_id, revision, patch, None, f"client {action}(stale={stale})")

    # -- queries -------------------------------------------------------------------------

    @rule(
        spec=_QUERIES,
        run_ids=st.one_of(st.none(), st.lists(runs, max_size=3)),
        page_size=st.sampled_from([None, 1, 2, 5]),
    )
    def find(self, spec: dict[str, Any], run_ids: list[str] | None, page_size: int | None) -> None:
        """find: following next_cursor yields exactly the model's matches, in order."""
        query = self._query(spec, run_ids, page_size)
        expected = [d["id"] for d in ordered(self.model.values(), query)]
        got: list[str] = []
        cursor: str | None = None
        for _ in range(len(self.model) + 2):
            page = self._call(self.handles[-1].find(_with_cursor(query, cursor)))
            ids = [r.id for r in page.items]
            assert page_size is None or len(ids) <= page_size, (
                f"find(limit={page_size}) returned a page of {len(ids)}"
            )
            for run in page.items:
                if run.id in self.model:
                    self._agree(run, self.model[run.id], "find() returned")
            got.extend(ids)
            cursor = page.next_cursor
            if cursor is None:
                break
            assert ids, "find() returned an empty page with a next_cursor"
        else:
            raise AssertionError(f"find() pagination did not end ({got})")
        assert got == expected, f"find({query}) paged to {got}, the model says {expected}"

    @rule(one=_ONE_FILTER)
    def find_by_one_filter(self, one: tuple[str, str | None, Any]) -> None:
        """find/count: a single filter (typed meta/context value, tenant, key) selects exactly."""
        field, key, value = one
        filters: dict[str, Any] = {field: value if key is None else {key: value}}
        query = RunQuery(limit=None, **filters)
        expected = [d["id"] for d in ordered(self.model.values(), query)]
        page = self._call(self.handles[-1].find(query))
        got = [r.id for r in page.items]
        assert got == expected, f"find({query}) returned {got}, the model says {expected}"
        total = self._call(self.handles[0].count(query))
        assert total == len(expected), f"count({query}) returned {total}, the model says {expected}"

    @rule(spec=_QUERIES, run_ids=st.one_of(st.none(), st.lists(runs, max_size=3)))
    def count(self, spec: dict[str, Any], run_ids: list[str] | None) -> None:
        """count: the number of model runs matching (limit and sort ignored)."""
        query = self._query(spec, run_ids, 1)
        expected = sum(1 for d in self.model.values() if matches(d, query))
        got = self._call(self.handles[0].count(query))
        assert got == expected, f"count({query}) returned {got}, the model says {expected}"

    @rule(
        spec=_QUERIES,
        run_ids=st.one_of(st.none(), st.lists(runs, max_size=3)),
        cleanup=st.one_of(
            st.none(), st.sampled_from([["done", "failed", "cancelled"], "done", ["cancelled"]])
        ),
    )
    def delete(
        self, spec: dict[str, Any], run_ids: list[str] | None, cleanup: str | list[str] | None
    ) -> None:
        """delete: removes exactly the model's matches (limit ignored), returns how many."""
        if cleanup is not None:  # usually a cleanup of ended runs, as the engine does
            spec = {**spec, "status": cleanup}
        query = self._query(spec, run_ids, 1)
        doomed = [run_id for run_id, d in self.model.items() if matches(d, query)]
        got = self._call(self.handles[0].delete(query))
        assert got == len(doomed), f"delete({query}) returned {got}, the model says {len(doomed)}"
        for run_id in doomed:
            del self.model[run_id]
            self._touched.add(run_id)

    # -- after every step ------------------------------------------------------------------

    @invariant()
    def store_equals_model(self) -> None:
        """The store holds exactly the model's runs, field for field (read through every handle)."""
        page = self._call(self.handles[0].find(RunQuery(limit=None, sort="created_at")))
        stored = {r.id: r for r in page.items}
        assert len(stored) == len(page.items), "find() returned a run twice"
        missing, extra = set(self.model) - set(stored), set(stored) - set(self.model)
        assert not missing and not extra, (
            f"store and model hold different runs: lost {sorted(missing)}, "
            f"unexpected {sorted(extra)}"
        )
        for run_id, doc in self.model.items():
            self._agree(stored[run_id], doc, "after this step")
        total = self._call(self.handles[-1].count(RunQuery()))
        assert total == len(self.model), f"count() says {total} runs, the model {len(self.model)}"
        for run_id in sorted(self._touched):
            got = self._call(self.handles[-1].get(run_id))
            if run_id in self.model:
                self._agree(got, self.model[run_id], "get() after this step")
            else:
                assert got is None, f"deleted run {run_id} is still readable"
        self._touched.clear()


def _note(what: str) -> None:
    """A hypothesis event (``--hypothesis-show-statistics``), when a test is running."""
    if currently_in_test_context():
        event(what)


def _with_cursor(query: RunQuery, cursor: str | None) -> RunQuery:
    fields = {name: getattr(query, name) for name in RunQuery.__dataclass_fields__}
    fields["cursor"] = cursor
    return RunQuery(**fields)


def _brief(run: WorkflowRun) -> str:
    owner = run.lease.owner if run.lease else None
    return f"success (revision {run.revision}, lease {owner!r})"


def _ids(runs: Sequence[WorkflowRun]) -> list[str]:
    return [r.id for r in runs]
