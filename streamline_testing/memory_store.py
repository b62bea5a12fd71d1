"""``InMemoryStore``: the full Store contract in one process, for fast tests.

State lives on the instance (nothing global). Every operation runs without
awaiting anything in between its read and its write, so on one event loop
each operation is atomic by construction. Documents are deep copies, never
shared with callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from streamline_core.claiming import is_takeover, leased_runs
from streamline_core.errors import (
    ConflictError,
    LeaseLostError,
    WorkflowNotFoundError,
)
from streamline_core.run import (
    RunPage,
    RunStatus,
    WorkflowRun,
    decode_cursor,
    encode_cursor,
    run_from_document,
    run_to_document,
)
from streamline_core.slots import SlotBook
from streamline_core.store import (
    RunQuery,
    WorkflowFilter,
    apply_patch,
    clone_document,
    matches_query,
    sort_key,
    workflow_matches,
)

__all__ = ["InMemoryStore", "from_url"]

_CLAIMABLE = (RunStatus.DRAFT.value, RunStatus.RUNNING.value, RunStatus.WAITING.value)
_WRITE_ID = "_write_id"  # the write id of the write that produced the stored revision


class InMemoryStore:
    """A Store kept in a dict, with the exact semantics of the durable stores.

    Args:
        name: Optional label, shown in ``repr``.
    """

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._docs: dict[str, dict[str, Any]] = {}
        self.writes = 0
        """Number of writes performed (create, claim, transition, delete) — for tests."""

    def __repr__(self) -> str:
        return f"InMemoryStore({self.name!r}, runs={len(self._docs)})"

    def _load(self, doc: dict[str, Any]) -> WorkflowRun:
        return run_from_document(clone_document(doc))

    async def create(
        self, run: WorkflowRun, *, write_id: str | None = None
    ) -> tuple[WorkflowRun, bool]:
        """Insert ``run`` unless an active run holds its idempotency key."""
        if run.idempotency_key is not None:
            for doc in self._docs.values():
                if (
                    doc["idempotency_key"] == run.idempotency_key
                    and doc["workflow_id"] == run.workflow_id
                    and doc["tenant_id"] == run.tenant_id
                    and doc["status"] in _CLAIMABLE
                ):
                    return self._load(doc), False
        if run.id in self._docs:
            stored = self._docs[run.id]
            if write_id is not None and stored.get(_WRITE_ID) == write_id:
                return self._load(stored), True  # our own create, repeated
            raise ConflictError(f"run {run.id!r} already exists", run_id=run.id)
        self._docs[run.id] = run_to_document(run)
        self._docs[run.id][_WRITE_ID] = write_id
        self.writes += 1
        return self._load(self._docs[run.id]), True

    async def get(self, run_id: str) -> WorkflowRun | None:
        """The run, or ``None``."""
        doc = self._docs.get(run_id)
        return None if doc is None else self._load(doc)

    async def claim(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: WorkflowFilter,
        tenant_id: str | None = None,
    ) -> list[WorkflowRun]:
        """Lease up to ``limit`` claimable runs (priority desc, due time asc)."""
        if limit <= 0:
            return []
        candidates = [
            d
            for d in self._docs.values()
            # The status test first: most stored runs have ended, and it is cheapest.
            if d.get("status") in _CLAIMABLE
            and d.get("concurrency_key") is None
            and d.get("rate_key") is None
            and self._claimable(d, now, workflows, tenant_id)
        ]
        candidates.sort(key=lambda d: (-d.get("priority", 0), d["next_run_at"], d["id"]))
        return self._lease(candidates[:limit], worker, now, lease_for)

    def _claimable(
        self, d: dict[str, Any], now: datetime, workflows: WorkflowFilter, tenant_id: str | None
    ) -> bool:
        return bool(
            d.get("status") in _CLAIMABLE
            and d.get("next_run_at") is not None
            and d["next_run_at"] <= now
            and not d.get("paused")
            and (d.get("lease") is None or d["lease"]["expires_at"] <= now)
            and workflow_matches(workflows, d.get("workflow_id", ""), d.get("workflow_version", ""))
            and (tenant_id is None or d.get("tenant_id") == tenant_id)
        )

    def _lease(
        self, leased: list[dict[str, Any]], worker: str, now: datetime, lease_for: float
    ) -> list[WorkflowRun]:
        for d in leased:
            if is_takeover(d["status"], d.get("lease")):
                d["recoveries"] = d.get("recoveries", 0) + 1
            d["lease"] = {"owner": worker, "expires_at": now + timedelta(seconds=lease_for)}
            d["revision"] = d.get("revision", 0) + 1
            d[_WRITE_ID] = None
            self.writes += 1
        return leased_runs(leased, self._load)

    async def claim_limited(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: WorkflowFilter,
        tenant_id: str | None = None,
        run_id: str | None = None,
    ) -> list[WorkflowRun]:
        """Lease up to ``limit`` limited runs within their slots and rate windows.

        Atomic by construction (nothing is awaited): revoke expired leases of
        keyed runs, then admit candidates in claim order through a
        :class:`~streamline_core.slots.SlotBook`.
        """
        if limit <= 0:
            return []
        for d in self._docs.values():
            lease = d.get("lease")
            if d.get("concurrency_key") is not None and lease and lease["expires_at"] <= now:
                if is_takeover(d["status"], lease):
                    d["recoveries"] = d.get("recoveries", 0) + 1
                d["lease"] = None
                d["revision"] = d.get("revision", 0) + 1
                self.writes += 1

        def live(wf: str, key: str) -> int:
            return sum(
                1
                for d in self._docs.values()
                if d.get("workflow_id") == wf
                and d.get("concurrency_key") == key
                and d.get("lease") is not None
                and d["lease"]["expires_at"] > now
            )

        def begun(wf: str, key: str, since: datetime) -> int:
            return sum(
                1
                for d in self._docs.values()
                if d.get("workflow_id") == wf
                and d.get("rate_key") == key
                and d.get("began_at") is not None
                and since < d["began_at"] <= now
            )

        candidates = [
            d
            for d in self._docs.values()
            if (d.get("concurrency_key") is not None or d.get("rate_key") is not None)
            and (run_id is None or d["id"] == run_id)
            and self._claimable(d, now, workflows, tenant_id)
        ]
        candidates.sort(key=lambda d: (-d.get("priority", 0), d["next_run_at"], d["id"]))
        book = SlotBook(now, live, begun)
        leased: list[dict[str, Any]] = []
        for d in candidates:
            if len(leased) >= limit:
                break
            if book.admit(d):
                if d.get("began_at") is None:
                    d["began_at"] = now
                leased.append(d)
        return self._lease(leased, worker, now, lease_for)

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        *,
        write_id: str | None = None,
    ) -> WorkflowRun:
        """Compare-and-set ``patch`` onto the run."""
        doc = self._docs.get(run_id)
        if doc is None:
            raise WorkflowNotFoundError(f"run {run_id!r} not found", run_id=run_id)
        if (
            write_id is not None
            and doc["revision"] == expected_revision + 1
            and doc.get(_WRITE_ID) == write_id
        ):
            return self._load(doc)  # our own write, repeated after a lost answer
        if doc["revision"] != expected_revision:
            raise ConflictError(
                f"run {run_id!r} is at revision {doc['revision']}, not {expected_revision}",
                run_id=run_id,
            )
        if owner is not None and (doc["lease"] is None or doc["lease"]["owner"] != owner):
            raise ConflictError(f"run {run_id!r} is not leased to {owner!r}", run_id=run_id)
        new = apply_patch(clone_document(doc), patch)
        new["revision"] = expected_revision + 1
        new[_WRITE_ID] = write_id
        run = run_from_document(clone_document(new))  # refuse a patch that would corrupt the run
        self._docs[run_id] = new
        self.writes += 1
        return run

    async def heartbeat(
        self, run_id: str, owner: str, now: datetime, lease_for: float
    ) -> RunStatus:
        """Extend ``owner``'s lease without bumping the revision."""
        doc = self._docs.get(run_id)
        if doc is None or doc["lease"] is None or doc["lease"]["owner"] != owner:
            raise LeaseLostError(f"{owner!r} does not hold run {run_id!r}", run_id=run_id)
        doc["lease"]["expires_at"] = now + timedelta(seconds=lease_for)
        return RunStatus(doc["status"])

    def _matching(self, query: RunQuery) -> list[WorkflowRun]:
        return [r for r in (self._load(d) for d in self._docs.values()) if matches_query(r, query)]

    async def find(self, query: RunQuery) -> RunPage:
        """One page of matching runs, keyset-paginated."""
        field, desc = sort_key(query)
        runs = self._matching(query)
        runs.sort(key=lambda r: (getattr(r, field), r.id), reverse=desc)
        if query.cursor is not None:
            value, last_id = decode_cursor(query.cursor)
            if desc:
                runs = [r for r in runs if (getattr(r, field), r.id) < (value, last_id)]
            else:
                runs = [r for r in runs if (getattr(r, field), r.id) > (value, last_id)]
        if query.limit is None or len(runs) <= query.limit:
            return RunPage(items=runs)
        page = runs[: query.limit]
        last = page[-1]
        return RunPage(items=page, next_cursor=encode_cursor(getattr(last, field), last.id))

    async def count(self, query: RunQuery) -> int:
        """How many runs match."""
        return len(self._matching(query))

    async def delete(self, query: RunQuery) -> int:
        """Delete matching runs."""
        ids = [r.id for r in self._matching(query)]
        for run_id in ids:
            del self._docs[run_id]
        self.writes += len(ids)
        return len(ids)

    async def close(self) -> None:
        """Nothing to release."""

    # Test helpers, not part of the Store protocol.

    def raw(self, run_id: str) -> dict[str, Any]:
        """The stored document itself (tests may corrupt it on purpose)."""
        return self._docs[run_id]

    def __len__(self) -> int:
        return len(self._docs)


def from_url(url: str) -> InMemoryStore:
    """Store factory for ``memory://`` URLs (entry point ``streamline.stores``)."""
    return InMemoryStore(url.partition("://")[2] or "memory")
