"""Deliberately broken stores, each violating one clause of the Store contract.

Each is an ``InMemoryStore`` with one operation rewritten the wrong way, and a
harness for it. ``test_suite_has_teeth.py`` checks the conformance suite
catches every one, naming the violated clause.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from streamline_core.errors import ConflictError, LeaseLostError
from streamline_core.run import RunStatus, WorkflowRun, run_to_document
from streamline_core.store import Store
from streamline_testing import InMemoryStore
from streamline_testing.conformance import StoreHarness

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
    ) -> WorkflowRun:
        doc = self._docs.get(run_id)
        if doc is not None:
            expected_revision = doc["revision"]  # "whatever is stored is fine"
        return await super().transition(run_id, expected_revision, patch, owner)


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

    async def create(self, run: WorkflowRun) -> tuple[WorkflowRun, bool]:
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


class LosesTheLastWrite(InMemoryStore):
    """Acknowledges a transition, returns the new run, and never persists it."""

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
    ) -> WorkflowRun:
        stored = self._docs.get(run_id)
        shadow = copy.deepcopy(stored) if stored is not None else None
        result = await super().transition(run_id, expected_revision, patch, owner)
        if shadow is not None:
            self._docs[run_id] = shadow  # the write "happened" only in the reply
        return result


BROKEN_STORES: dict[type[InMemoryStore], str] = {
    ClaimIgnoresLiveLeases: "claim_is_exclusive_while_lease_is_live",
    TransitionIgnoresRevision: "transition_rejects_stale_revision",
    HeartbeatWithoutOwnerCheck: "heartbeat_by_non_owner_fails",
    RacyIdempotentCreate: "idempotent_create_is_race_safe",
    ClaimsNotYetDueRuns: "claim_skips_runs_not_yet_due",
    ClaimsPausedRuns: "claim_skips_paused_runs",
    LosesTheLastWrite: "acknowledged_writes_are_durable",
}
"""Each broken store, and the clause that must fail for it."""


def harness_for(store_class: type[InMemoryStore]) -> type[StoreHarness]:
    """A harness class making fresh ``store_class`` stores."""

    class Harness(StoreHarness):
        async def make_store(self) -> Store:
            return store_class()

    Harness.__name__ = Harness.__qualname__ = f"{store_class.__name__}Harness"
    return Harness


# Module-level harnesses, so the runner can load them by "module:Class".
ClaimIgnoresLiveLeasesHarness = harness_for(ClaimIgnoresLiveLeases)
TransitionIgnoresRevisionHarness = harness_for(TransitionIgnoresRevision)
