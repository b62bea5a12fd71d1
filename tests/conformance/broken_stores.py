"""Deliberately broken stores, each violating one clause of the Store contract.

Each is an ``InMemoryStore`` with one operation rewritten the wrong way, and a
harness for it. ``test_suite_has_teeth.py`` checks the conformance suite
catches every one, naming the violated clause.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from streamline_core.errors import ConflictError, LeaseLostError
from streamline_core.run import RunStatus, WorkflowRun, run_from_document, run_to_document
from streamline_core.store import UNSET, RunQuery, Store, workflow_matches
from streamline_testing import InMemoryStore
from streamline_testing.conformance import Capabilities, StoreHarness

_ACTIVE = ("draft", "running", "waiting")


class _ClaimWithout(InMemoryStore):
    """A claim that leaves out one of the claimable conditions."""

    check_lease = True
    check_due = True
    check_paused = True

    async def claim(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: Collection[str],
        tenant_id: str | None = None,
    ) -> list[WorkflowRun]:
        if limit <= 0:
            return []
        candidates = [
            d
            for d in self._docs.values()
            if d["status"] in _ACTIVE
            and (not self.check_due or (d["next_run_at"] is not None and d["next_run_at"] <= now))
            and (not self.check_paused or not d["paused"])
            and (not self.check_lease or d["lease"] is None or d["lease"]["expires_at"] <= now)
            and d["workflow_id"] in workflows
            and (tenant_id is None or d["tenant_id"] == tenant_id)
        ]
        far = datetime.max.replace(tzinfo=now.tzinfo)
        candidates.sort(key=lambda d: (-d["priority"], d["next_run_at"] or far, d["id"]))
        claimed = []
        for d in candidates[:limit]:
            if d["lease"] is not None and d["status"] == RunStatus.RUNNING.value:
                d["recoveries"] += 1
            d["lease"] = {"owner": worker, "expires_at": now + timedelta(seconds=lease_for)}
            d["revision"] += 1
            claimed.append(self._load(d))
        return claimed


class ClaimIgnoresLiveLeases(_ClaimWithout):
    """Claims runs whose lease is still live."""

    check_lease = False


class ClaimsNotYetDueRuns(_ClaimWithout):
    """Claims runs whose next_run_at is in the future (or unset)."""

    check_due = False


class ClaimsPausedRuns(_ClaimWithout):
    """Claims paused runs."""

    check_paused = False


class TransitionIgnoresRevision(InMemoryStore):
    """Compare-and-set without the compare on the revision."""

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        **options: Any,
    ) -> WorkflowRun:
        doc = self._docs.get(run_id)
        if doc is not None:
            expected_revision = doc["revision"]  # "whatever is stored is fine"
        return await super().transition(run_id, expected_revision, patch, owner, **options)


class HeartbeatWithoutOwnerCheck(InMemoryStore):
    """Extends any run's lease, whoever asks."""

    async def heartbeat(
        self, run_id: str, owner: str, now: datetime, lease_for: float
    ) -> RunStatus:
        doc = self._docs.get(run_id)
        if doc is None or doc["lease"] is None:
            raise LeaseLostError(f"run {run_id!r} is not leased", run_id=run_id)
        doc["lease"]["expires_at"] = now + timedelta(seconds=lease_for)
        return RunStatus(doc["status"])


class RacyIdempotentCreate(InMemoryStore):
    """Looks for the key, yields to the event loop, then inserts: not atomic."""

    async def create(self, run: WorkflowRun, **options: Any) -> tuple[WorkflowRun, bool]:
        if run.idempotency_key is not None:
            for doc in self._docs.values():
                if (
                    doc["idempotency_key"] == run.idempotency_key
                    and doc["workflow_id"] == run.workflow_id
                    and doc["tenant_id"] == run.tenant_id
                    and doc["status"] in _ACTIVE
                ):
                    return self._load(doc), False
        await asyncio.sleep(0)  # e.g. a round trip between the check and the insert
        if run.id in self._docs:
            raise ConflictError(f"run {run.id!r} already exists", run_id=run.id)
        self._docs[run.id] = run_to_document(run)
        return self._load(self._docs[run.id]), True


class RemembersGivenUpKeys(InMemoryStore):
    """Keeps a key's holder in a table filled at create and cleared only when it ends."""

    def __init__(self) -> None:
        super().__init__()
        self._holders: dict[tuple[str, str | None, str], str] = {}

    async def create(self, run: WorkflowRun) -> tuple[WorkflowRun, bool]:
        if run.idempotency_key is not None:
            key = (run.workflow_id, run.tenant_id, run.idempotency_key)
            holder = self._docs.get(self._holders.get(key, ""))
            if holder is not None and holder["status"] in _ACTIVE:
                return self._load(holder), False
        stored, created = await super().create(run)
        if created and run.idempotency_key is not None:
            self._holders[(run.workflow_id, run.tenant_id, run.idempotency_key)] = run.id
        return stored, created


class LosesTheLastWrite(InMemoryStore):
    """Acknowledges a transition, returns the new run, and never persists it."""

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        **options: Any,
    ) -> WorkflowRun:
        stored = self._docs.get(run_id)
        shadow = copy.deepcopy(stored) if stored is not None else None
        result = await super().transition(run_id, expected_revision, patch, owner, **options)
        if shadow is not None:
            self._docs[run_id] = shadow  # the write "happened" only in the reply
        return result


# -- rules of the contract no clause checked before issue #17 ----------------------


class _ClaimBy(InMemoryStore):
    """A claim whose candidate filter and order come from overridable hooks."""

    def _due(self, doc: dict[str, Any], now: datetime) -> bool:
        return doc["next_run_at"] is not None and doc["next_run_at"] <= now

    def _expired(self, doc: dict[str, Any], now: datetime) -> bool:
        return doc["lease"] is None or doc["lease"]["expires_at"] <= now

    def _tenant_ok(self, doc: dict[str, Any], tenant_id: str | None) -> bool:
        return tenant_id is None or doc["tenant_id"] == tenant_id

    def _order(self, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(candidates, key=lambda d: (-d["priority"], d["next_run_at"], d["id"]))

    def _candidates(
        self, now: datetime, workflows: Collection[str], tenant_id: str | None
    ) -> list[dict[str, Any]]:
        return self._order(
            [
                d
                for d in self._docs.values()
                if d["status"] in _ACTIVE
                and self._due(d, now)
                and not d["paused"]
                and self._expired(d, now)
                and workflow_matches(workflows, d["workflow_id"], d["workflow_version"])
                and self._tenant_ok(d, tenant_id)
            ]
        )

    @staticmethod
    def _lease(doc: dict[str, Any], worker: str, now: datetime, lease_for: float) -> None:
        if doc["lease"] is not None and doc["status"] == RunStatus.RUNNING.value:
            doc["recoveries"] += 1
        doc["lease"] = {"owner": worker, "expires_at": now + timedelta(seconds=lease_for)}
        doc["revision"] += 1

    async def claim(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: Collection[str],
        tenant_id: str | None = None,
    ) -> list[WorkflowRun]:
        if limit <= 0:
            return []
        leased = self._candidates(now, workflows, tenant_id)[:limit]
        for doc in leased:
            self._lease(doc, worker, now, lease_for)
        return [self._load(d) for d in leased]


class ClaimSortsPriorityAsText(_ClaimBy):
    """Orders claims by the priority's text ("9" > "10", "-2" > "-1")."""

    def _order(self, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        by_due = sorted(candidates, key=lambda d: (d["next_run_at"], d["id"]))
        return sorted(by_due, key=lambda d: str(d["priority"]), reverse=True)


class ClaimRanksOnlyTheEarliestDue(_ClaimBy):
    """Reads the 100 earliest-due candidates, then ranks those by priority."""

    def _order(self, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        window = sorted(candidates, key=lambda d: (d["next_run_at"], d["id"]))[:100]
        return super()._order(window)


def _whole(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


class ClaimComparesWholeSeconds(_ClaimBy):
    """Compares and orders due times and lease expiries truncated to the second."""

    def _due(self, doc: dict[str, Any], now: datetime) -> bool:
        return doc["next_run_at"] is not None and _whole(doc["next_run_at"]) <= _whole(now)

    def _expired(self, doc: dict[str, Any], now: datetime) -> bool:
        return doc["lease"] is None or _whole(doc["lease"]["expires_at"]) <= _whole(now)

    def _order(self, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(candidates, key=lambda d: (-d["priority"], _whole(d["next_run_at"]), d["id"]))


class ClaimPinsOnlyTheRevision(_ClaimBy):
    """Reads candidates, round-trips, then leases each with a filter on the revision alone.

    A heartbeat does not bump the revision, so one that lands between the
    read and the write is overwritten: the owner and the claimer both win.
    """

    async def claim(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: Collection[str],
        tenant_id: str | None = None,
    ) -> list[WorkflowRun]:
        if limit <= 0:
            return []
        read = [(d["id"], d["revision"]) for d in self._candidates(now, workflows, tenant_id)]
        await asyncio.sleep(0)  # the round trip between the read and the writes
        leased = []
        for run_id, revision in read[:limit]:
            doc = self._docs.get(run_id)
            if doc is not None and doc["revision"] == revision:  # "pins the revision"
                self._lease(doc, worker, now, lease_for)
                leased.append(self._load(doc))
        return leased


class EmptyTenantMeansAnyTenant(_ClaimBy):
    """Treats tenant_id="" like no tenant filter, in claim and in queries."""

    def _tenant_ok(self, doc: dict[str, Any], tenant_id: str | None) -> bool:
        return not tenant_id or doc["tenant_id"] == tenant_id

    def _matching(self, query: RunQuery) -> list[WorkflowRun]:
        if query.tenant_id == "":
            query = dataclasses.replace(query, tenant_id=None)
        return super()._matching(query)


class HeartbeatKeepsTheLaterExpiry(InMemoryStore):
    """A heartbeat never shortens a lease: it keeps max(old expiry, now + lease_for)."""

    async def heartbeat(
        self, run_id: str, owner: str, now: datetime, lease_for: float
    ) -> RunStatus:
        doc = self._docs.get(run_id)
        before = doc["lease"]["expires_at"] if doc and doc["lease"] else None
        status = await super().heartbeat(run_id, owner, now, lease_for)
        if doc is not None and before is not None:
            doc["lease"]["expires_at"] = max(before, doc["lease"]["expires_at"])
        return status


class HeartbeatTruncatesLeaseFor(InMemoryStore):
    """Extends the lease by whole seconds only (an integer column, say)."""

    async def heartbeat(
        self, run_id: str, owner: str, now: datetime, lease_for: float
    ) -> RunStatus:
        return await super().heartbeat(run_id, owner, now, int(lease_for))


def _merge(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        merged = dict(old)
        for key, value in new.items():
            merged[key] = _merge(old.get(key), value)
        return merged
    return new


class PatchMergesDicts(InMemoryStore):
    """Merges a dict patch value into the dict it replaces (a deep ``$set`` of each key)."""

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        **options: Any,
    ) -> WorkflowRun:
        doc = self._docs.get(run_id)
        if doc is not None:
            merged = {}
            for path, value in patch.items():
                old: Any = doc
                for part in path.split("."):
                    if isinstance(old, list) and part.isdigit() and int(part) < len(old):
                        old = old[int(part)]
                    elif isinstance(old, dict):
                        old = old.get(part)
                    else:
                        old = None
                merged[path] = _merge(old, value) if value is not UNSET else value
            patch = merged
        return await super().transition(run_id, expected_revision, patch, owner, **options)


class TransitionGuardsIdempotencyKeys(InMemoryStore):
    """Refuses a transition that makes a run active while another active run holds its key."""

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        **options: Any,
    ) -> WorkflowRun:
        doc = self._docs.get(run_id)
        if (
            doc is not None
            and doc["idempotency_key"] is not None
            and patch.get("status") in _ACTIVE
        ):
            for other in self._docs.values():
                if (
                    other["id"] != run_id
                    and other["status"] in _ACTIVE
                    and (other["workflow_id"], other["tenant_id"], other["idempotency_key"])
                    == (doc["workflow_id"], doc["tenant_id"], doc["idempotency_key"])
                ):
                    raise ConflictError(f"another active run holds the key of {run_id!r}")
        return await super().transition(run_id, expected_revision, patch, owner, **options)


_PLUS_ONE = timezone(timedelta(hours=1))


def _shifted(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(_PLUS_ONE)
    if isinstance(value, dict):
        return {k: _shifted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shifted(v) for v in value]
    return value


class ReturnsLocalTime(InMemoryStore):
    """Hands every datetime back in UTC+1: the same instant, so ``==`` cannot tell."""

    def _load(self, doc: dict[str, Any]) -> WorkflowRun:
        return run_from_document(_shifted(doc))


def _loose(value: Any) -> Any:
    return str(value) if isinstance(value, int | str) and not isinstance(value, bool) else value


class QueriesCompareAsText(InMemoryStore):
    """Compares meta/context query values as text, so 1 matches "1"."""

    def _matching(self, query: RunQuery) -> list[WorkflowRun]:
        loose = dataclasses.replace(query, meta=None, context=None)
        found = []
        for run in super()._matching(loose):
            ok = True
            for data, wanted in ((run.meta, query.meta), (run.context, query.context)):
                for key, value in (wanted or {}).items():
                    ok = ok and key in data and _loose(data[key]) == _loose(value)
            if ok:
                found.append(run)
        return found


class FindIgnoresParentRunId(InMemoryStore):
    """find()/count() forget the parent_run_id filter (a join would see every run)."""

    def _matching(self, query: RunQuery) -> list[WorkflowRun]:
        return super()._matching(dataclasses.replace(query, parent_run_id=None))


class DeleteIgnoresIdempotencyKey(InMemoryStore):
    """delete() forgets the idempotency_key filter (and so deletes every run)."""

    async def delete(self, query: RunQuery) -> int:
        return await super().delete(dataclasses.replace(query, idempotency_key=None))


class DeleteTakesEmptyListsAsNoFilter(InMemoryStore):
    """delete() reads run_ids=[] (or workflow_id=[], status=[]) as "no filter": deletes all."""

    async def delete(self, query: RunQuery) -> int:
        fields = {
            name: None
            for name in ("run_ids", "workflow_id", "status")
            if getattr(query, name) is not None
            and not isinstance(getattr(query, name), str)
            and len(getattr(query, name)) == 0
        }
        return await super().delete(dataclasses.replace(query, **fields))


class ClaimGivesUpOnACorruptDocument(_ClaimBy):
    """One unreadable candidate fails the whole claim: nothing is leased or returned.

    (SQLite's claim did this while its ``json_set`` ran over a document that
    is not JSON: no run was ever claimed again.)
    """

    async def claim(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: Collection[str],
        tenant_id: str | None = None,
    ) -> list[WorkflowRun]:
        for doc in self._candidates(now, workflows, tenant_id)[: max(limit, 0)]:
            self._load(doc)  # raises DataCorruptionError before anything is leased
        return await super().claim(worker, now, lease_for, limit, workflows, tenant_id)


class TransitionForgetsWriteIds(InMemoryStore):
    """Takes a transition's write id and forgets it: a repeat after a lost answer conflicts."""

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        **options: Any,
    ) -> WorkflowRun:
        return await super().transition(run_id, expected_revision, patch, owner)


class CreateForgetsWriteIds(InMemoryStore):
    """Takes a create's write id and forgets it: a repeated create conflicts."""

    async def create(self, run: WorkflowRun, **options: Any) -> tuple[WorkflowRun, bool]:
        return await super().create(run)


class _LimitedClaimDoneWrong(InMemoryStore):
    """A ``claim_limited`` that decides from a count and leases afterwards (the shared shape)."""

    counts_expired_leases = False
    revokes = True
    yields_between_count_and_claim = False

    async def claim_limited(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: Collection[str],
        tenant_id: str | None = None,
        run_id: str | None = None,
    ) -> list[WorkflowRun]:
        if self.revokes:
            for d in self._docs.values():
                lease = d.get("lease")
                if d.get("concurrency_key") is not None and lease and lease["expires_at"] <= now:
                    d["lease"] = None
                    d["revision"] += 1
                    if d["status"] == "running":
                        d["recoveries"] += 1
        live: dict[tuple[str, str], int] = {}
        for d in self._docs.values():
            lease = d.get("lease")
            if (
                d.get("concurrency_key") is not None
                and lease is not None
                and (self.counts_expired_leases or lease["expires_at"] > now)
            ):
                key = (d["workflow_id"], d["concurrency_key"])
                live[key] = live.get(key, 0) + 1
        candidates = [
            d
            for d in self._docs.values()
            if (d.get("concurrency_key") is not None or d.get("rate_key") is not None)
            and (run_id is None or d["id"] == run_id)
            and self._claimable(d, now, workflows, tenant_id)
        ]
        candidates.sort(key=lambda d: (-d["priority"], d["next_run_at"], d["id"]))
        # Decide how many runs each bucket may take from the count...
        quota: dict[tuple[str, str] | None, int] = {}
        for d in candidates:
            key = None
            if d.get("concurrency_key") is not None:
                key = (d["workflow_id"], d["concurrency_key"])
                room = d["concurrency_limit"] - live.get(key, 0)
            else:
                room = limit
            quota.setdefault(key, max(room, 0))
        if self.yields_between_count_and_claim:
            await asyncio.sleep(0)  # another claim counts the same free slots meanwhile
        # ... then take whichever runs of the bucket are still free.
        leased = []
        for d in candidates:
            if len(leased) >= limit:
                break
            key = None
            if d.get("concurrency_key") is not None:
                key = (d["workflow_id"], d["concurrency_key"])
            if quota.get(key, 0) <= 0:
                continue
            if d.get("lease") is not None and d["lease"]["expires_at"] > now:
                continue
            quota[key] -= 1
            leased.append(d)
        for d in leased:
            if d.get("began_at") is None:
                d["began_at"] = now
        return self._lease(leased, worker, now, lease_for)


class LimitedClaimCountsThenClaims(_LimitedClaimDoneWrong):
    """Counts the free slots, then leases in a later step: racing claims both take the slot."""

    yields_between_count_and_claim = True


class LimitedClaimKeepsExpiredSlots(_LimitedClaimDoneWrong):
    """A slot whose lease expired is never freed (its dead worker holds it forever)."""

    counts_expired_leases = True
    revokes = False


class LimitedClaimDoesNotRevoke(_LimitedClaimDoneWrong):
    """Frees an expired slot but leaves the lease, so its owner can heartbeat it back."""

    revokes = False


BROKEN_STORES: dict[type[InMemoryStore], str] = {
    ClaimIgnoresLiveLeases: "claim_is_exclusive_while_lease_is_live",
    TransitionIgnoresRevision: "transition_rejects_stale_revision",
    HeartbeatWithoutOwnerCheck: "heartbeat_by_non_owner_fails",
    RacyIdempotentCreate: "idempotent_create_is_race_safe",
    ClaimsNotYetDueRuns: "claim_skips_runs_not_yet_due",
    ClaimsPausedRuns: "claim_skips_paused_runs",
    LosesTheLastWrite: "acknowledged_writes_are_durable",
    ClaimSortsPriorityAsText: "claim_orders_priorities_as_numbers",
    ClaimRanksOnlyTheEarliestDue: "claim_ranks_every_due_run_by_priority",
    ClaimComparesWholeSeconds: "claim_compares_times_below_the_second",
    ClaimPinsOnlyTheRevision: "claim_racing_the_owners_heartbeat_exactly_one_wins",
    EmptyTenantMeansAnyTenant: "empty_tenant_is_a_tenant",
    HeartbeatKeepsTheLaterExpiry: "heartbeat_sets_expiry_to_now_plus_lease_for",
    HeartbeatTruncatesLeaseFor: "heartbeat_sets_expiry_to_now_plus_lease_for",
    PatchMergesDicts: "transition_replaces_dict_values_never_merges",
    TransitionGuardsIdempotencyKeys: "transition_ignores_idempotency_keys",
    ReturnsLocalTime: "datetimes_read_back_are_utc",
    QueriesCompareAsText: "queries_compare_values_with_their_type",
    DeleteIgnoresIdempotencyKey: "delete_agrees_with_every_filter",
    FindIgnoresParentRunId: "find_filters_by_every_query_field",
    DeleteTakesEmptyListsAsNoFilter: "delete_agrees_with_every_filter",
    ClaimGivesUpOnACorruptDocument: "claim_leases_valid_runs_beside_corrupt_documents",
    TransitionForgetsWriteIds: "transition_repeated_with_its_write_id_returns_the_stored_run",
    CreateForgetsWriteIds: "create_repeated_with_its_write_id_returns_the_stored_run",
    RemembersGivenUpKeys: "create_takes_a_key_its_holder_gave_up",
    LimitedClaimCountsThenClaims: "racing_limited_claims_never_exceed_the_limit",
    LimitedClaimKeepsExpiredSlots: "an_expired_keyed_lease_is_revoked_and_its_slot_reused",
    LimitedClaimDoesNotRevoke: "an_expired_keyed_lease_is_revoked_and_its_slot_reused",
}
"""Each broken store, and the clause that must fail for it."""

MACHINE_CATCHES: tuple[type[InMemoryStore], ...] = (
    ClaimIgnoresLiveLeases,
    TransitionIgnoresRevision,
    HeartbeatWithoutOwnerCheck,
    RacyIdempotentCreate,
    ClaimsNotYetDueRuns,
    ClaimsPausedRuns,
    LosesTheLastWrite,
    ClaimSortsPriorityAsText,
    EmptyTenantMeansAnyTenant,
    HeartbeatTruncatesLeaseFor,
    ReturnsLocalTime,
    DeleteIgnoresIdempotencyKey,
)
"""The broken stores the state machine alone also catches (under the teeth tests' settings).

The others break a rule that only a deterministic clause reaches every time:
sub-second times, hundreds of due runs, a claim racing a heartbeat, a corrupt
document; or one the random walk meets only in some runs (a heartbeat that
shortens a lease, an empty-list delete, two dict writes to one key, a key
held twice after a revival, a query meeting a string look-alike), which must
not decide the verdict."""


def harness_for(store_class: type[InMemoryStore]) -> type[StoreHarness]:
    """A harness class making fresh ``store_class`` stores (with the raw-corruption hook)."""

    class Harness(StoreHarness):
        capabilities = Capabilities(corrupt_documents=True)

        async def make_store(self) -> Store:
            return store_class()

        async def corrupt_document(self, store: Store, run_id: str) -> None:
            assert isinstance(store, InMemoryStore)
            store.raw(run_id)["steps"] = "garbage"

    Harness.__name__ = Harness.__qualname__ = f"{store_class.__name__}Harness"
    return Harness


# Module-level harnesses, so the runner can load them by "module:Class".
ClaimIgnoresLiveLeasesHarness = harness_for(ClaimIgnoresLiveLeases)
TransitionIgnoresRevisionHarness = harness_for(TransitionIgnoresRevision)


FLOW_MACHINE_CATCHES: tuple[type[InMemoryStore], ...] = (
    LimitedClaimCountsThenClaims,
    LimitedClaimKeepsExpiredSlots,
    LimitedClaimDoesNotRevoke,
)
"""The broken flow-control stores the flow-control state machine alone catches."""
