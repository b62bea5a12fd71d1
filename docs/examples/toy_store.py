"""A complete toy Store: a dict behind an ``asyncio.Lock``, passing the conformance suite.

It shows the whole contract in one page. Every operation holds the lock from
its first read to its last write, which is what makes claim, compare-and-set
and idempotent create atomic; a real backend gets the same from a transaction
or a conditional write. Run the suite against it with::

    streamline-conformance docs.examples.toy_store:ToyStoreHarness

(from the repository root), or under pytest::

    class TestToyStore(ToyStoreHarness, StoreContract): ...

Run as a script (``python docs/examples/toy_store.py``), it runs a workflow
on the toy store and prints the finished run.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from streamline_core.errors import ConflictError, LeaseLostError, WorkflowNotFoundError
from streamline_core.run import (
    ACTIVE_STATUSES,
    RunPage,
    RunStatus,
    WorkflowRun,
    decode_cursor,
    encode_cursor,
    run_from_document,
    run_to_document,
)
from streamline_core.store import (
    RunQuery,
    Store,
    WorkflowFilter,
    apply_patch,
    matches_query,
    sort_key,
    workflow_matches,
)
from streamline_testing.conformance import StoreHarness

_ACTIVE = {s.value for s in ACTIVE_STATUSES}


class ToyStore:
    """Runs as documents in a dict; one lock makes every operation atomic."""

    def __init__(self) -> None:
        self._docs: dict[str, dict[str, Any]] = {}
        self._lock = asyncio.Lock()

    @staticmethod
    def _run(doc: dict[str, Any]) -> WorkflowRun:
        return run_from_document(copy.deepcopy(doc))  # never hand out the stored dict

    async def create(
        self, run: WorkflowRun, *, write_id: str | None = None
    ) -> tuple[WorkflowRun, bool]:
        async with self._lock:
            if run.idempotency_key is not None:
                for doc in self._docs.values():
                    same_scope = (doc["workflow_id"], doc["tenant_id"]) == (
                        run.workflow_id,
                        run.tenant_id,
                    )
                    if (
                        same_scope
                        and doc["idempotency_key"] == run.idempotency_key
                        and doc["status"] in _ACTIVE
                    ):
                        return self._run(doc), False
            if run.id in self._docs:
                stored = self._docs[run.id]
                mine = write_id is not None and stored.get("_write_id") == write_id
                if mine and stored["revision"] == run.revision:
                    return self._run(stored), True  # our own create, sent again
                raise ConflictError(f"run {run.id!r} already exists", run_id=run.id)
            # The write id is kept in the document (readers ignore unknown keys).
            self._docs[run.id] = {**run_to_document(run), "_write_id": write_id}
            return self._run(self._docs[run.id]), True

    async def get(self, run_id: str) -> WorkflowRun | None:
        async with self._lock:
            doc = self._docs.get(run_id)
            return None if doc is None else self._run(doc)

    async def claim(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: WorkflowFilter,
        tenant_id: str | None = None,
    ) -> list[WorkflowRun]:
        async with self._lock:
            due = [
                d
                for d in self._docs.values()
                if d["status"] in _ACTIVE
                and d["next_run_at"] is not None
                and d["next_run_at"] <= now
                and not d["paused"]
                and (d["lease"] is None or d["lease"]["expires_at"] <= now)
                and workflow_matches(workflows, d["workflow_id"], d["workflow_version"])
                and (tenant_id is None or d["tenant_id"] == tenant_id)
            ]
            due.sort(key=lambda d: (-d["priority"], d["next_run_at"], d["id"]))
            claimed = []
            for doc in due[: max(limit, 0)]:
                if doc["lease"] is not None and doc["status"] == RunStatus.RUNNING:
                    doc["recoveries"] += 1  # a dead worker's lease, taken over
                doc["lease"] = {"owner": worker, "expires_at": now + timedelta(seconds=lease_for)}
                doc["revision"] += 1
                claimed.append(self._run(doc))
            return claimed

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        *,
        write_id: str | None = None,
    ) -> WorkflowRun:
        async with self._lock:
            doc = self._docs.get(run_id)
            if doc is None:
                raise WorkflowNotFoundError(f"run {run_id!r} not found", run_id=run_id)
            mine = write_id is not None and doc.get("_write_id") == write_id
            if mine and doc["revision"] == expected_revision + 1:
                return self._run(doc)  # our own write, sent again after a lost answer
            if doc["revision"] != expected_revision:
                raise ConflictError(f"run {run_id!r}: stale revision", run_id=run_id)
            if owner is not None and (doc["lease"] is None or doc["lease"]["owner"] != owner):
                raise ConflictError(f"run {run_id!r} is not leased to {owner!r}", run_id=run_id)
            new = apply_patch(copy.deepcopy(doc), patch)
            new["revision"] = expected_revision + 1
            new["_write_id"] = write_id
            run = run_from_document(new)  # all or nothing: validate before storing
            self._docs[run_id] = new
            return run

    async def heartbeat(
        self, run_id: str, owner: str, now: datetime, lease_for: float
    ) -> RunStatus:
        async with self._lock:
            doc = self._docs.get(run_id)
            if doc is None or doc["lease"] is None or doc["lease"]["owner"] != owner:
                raise LeaseLostError(f"{owner!r} does not hold run {run_id!r}", run_id=run_id)
            doc["lease"]["expires_at"] = now + timedelta(seconds=lease_for)  # no revision bump
            return RunStatus(doc["status"])

    def _matching(self, query: RunQuery) -> list[WorkflowRun]:
        runs = (self._run(d) for d in self._docs.values())
        return [r for r in runs if matches_query(r, query)]

    async def find(self, query: RunQuery) -> RunPage:
        field, descending = sort_key(query)

        def key(run: WorkflowRun) -> tuple[Any, str]:
            return getattr(run, field), run.id  # the sort field, ties by id

        async with self._lock:
            runs = sorted(self._matching(query), key=key, reverse=descending)
        if query.cursor is not None:  # keyset: strictly after the previous page's last run
            last = decode_cursor(query.cursor)
            runs = [r for r in runs if (key(r) < last if descending else key(r) > last)]
        if query.limit is None or len(runs) <= query.limit:
            return RunPage(items=runs)
        page = runs[: query.limit]
        return RunPage(items=page, next_cursor=encode_cursor(*key(page[-1])))

    async def count(self, query: RunQuery) -> int:
        async with self._lock:
            return len(self._matching(query))

    async def delete(self, query: RunQuery) -> int:
        async with self._lock:
            doomed = [r.id for r in self._matching(query)]
            for run_id in doomed:
                del self._docs[run_id]
            return len(doomed)

    async def close(self) -> None:
        pass  # nothing to release


class ToyStoreHarness(StoreHarness):
    """The one obligation: a fresh, empty store."""

    async def make_store(self) -> Store:
        return ToyStore()


async def main() -> WorkflowRun:
    """Run a two-step workflow on a ToyStore and print the finished run."""
    from streamline_core import Engine

    async def hello(ctx: Any) -> str:
        return "hello"

    async def world(ctx: Any) -> str:
        return f"{ctx.get_output('hello')}, world"

    engine = Engine(ToyStore(), load_entry_point_plugins=False)
    toy = engine.workflow("toy", steps={"hello": hello, "world": world})
    async with engine:
        run = await toy.start()
        done = await toy.wait_for(run.id, timeout=10)
    print(f"run {done.status} on the toy store: {done.output!r}")
    print("check the contract: streamline-conformance docs.examples.toy_store:ToyStoreHarness")
    return done


if __name__ == "__main__":
    asyncio.run(main())
