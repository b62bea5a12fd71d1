"""``MongoStore``: the Store contract on one MongoDB collection.

Every write is one atomic server operation on one document (the reads
around some of them only decide what to return or which error to raise):

* ``create`` is an ``insert_one``; idempotency is a partial unique index
  over the runs holding their key, and the loser of a race reads the winner
  back (a keyed create also looks the key's active holder up first).
* ``claim`` reads candidates, then leases each with a ``find_one_and_update``
  whose filter repeats every claimable condition and pins the revision read,
  so a run is never leased twice while a lease is live.
* ``transition`` is a ``find_one_and_update`` filtered on ``revision`` (and
  ``lease.owner``) that ``$set``/``$unset``s only the patched paths and
  ``$inc``s ``revision``; when it matches nothing, a follow-up read says why.
* ``heartbeat`` is a ``find_one_and_update`` on ``lease.owner`` that moves
  ``lease.expires_at`` only.

Only operations that behave the same on MongoDB and on mongomock are used
(DESIGN.md §8; the full list of differences is in docs/mongo.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from pymongo import ReadPreference, ReturnDocument
from pymongo.errors import DuplicateKeyError
from pymongo.write_concern import WriteConcern

from streamline_core.claiming import is_takeover, leased_runs
from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    LeaseLostError,
    WorkflowError,
    WorkflowNotFoundError,
)
from streamline_core.run import RunPage, RunStatus, WorkflowRun, encode_cursor
from streamline_core.store import RunQuery, WorkflowFilter, sort_key

from . import _indexes
from ._documents import KEY_HOLD, run_from_mongo, run_to_mongo, to_storage
from ._errors import translated
from ._query import ACTIVE, CLAIM_ORDER, claimable_filter, page_filter, query_filter, sort_spec
from ._types import Document, MongoCollection, MongoDatabase
from ._update import index_guards, list_index_paths, patch_problem, update_for_patch

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient

__all__ = ["MongoStore", "MAJORITY_JOURNALED"]

MAJORITY_JOURNALED: Final = WriteConcern(w="majority", j=True)
"""The default write concern: a write is acknowledged once a majority of the
replica set has it in its journal, so an acknowledged step commit survives a
failover (DESIGN.md §5: nothing acknowledged is lost)."""

_CREATE_ATTEMPTS = 5
_CLAIM_OVERREAD = 2  # read this many candidates per slot, so lost races can be made up


class MongoStore:
    """A Store on a MongoDB collection (PyMongo async API; Motor databases accepted).

    Args:
        db: A ``pymongo.AsyncMongoClient`` database, or a Motor (or
            mongomock-motor) database. The caller keeps ownership of its
            client: :meth:`close` does not close it.
        collection: Name of the collection holding one document per run.
        write_concern: Write concern of every write. Defaults to majority +
            journal; ``None`` inherits the database's.

    The engine's own indexes (idempotency, claim, tenant, event waits, hook
    tokens) are created on the first ``create``/``claim`` if missing;
    :meth:`ensure_indexes` adds listing, context and TTL indexes.
    """

    def __init__(
        self,
        db: MongoDatabase,
        *,
        collection: str = "workflow_runs",
        write_concern: WriteConcern | None = MAJORITY_JOURNALED,
    ) -> None:
        self._db = db
        self._name = collection
        # Primary reads: a CAS follow-up read or a get() right after a commit
        # must see that commit, whatever read preference the database has.
        self._collection: MongoCollection = db.get_collection(
            collection, read_preference=ReadPreference.PRIMARY, write_concern=write_concern
        )
        self._owned_client: AsyncMongoClient[Document] | None = None
        self._closed = False
        self._core_ready = False
        self._core_lock: asyncio.Lock | None = None

    @classmethod
    def _owning(
        cls, client: AsyncMongoClient[Document], db: MongoDatabase, **options: Any
    ) -> MongoStore:
        """A store that closes ``client`` in :meth:`close` (used by ``from_url``)."""
        store = cls(db, **options)
        store._owned_client = client
        return store

    def __repr__(self) -> str:
        return f"MongoStore({self._db.name}.{self._name})"

    @property
    def collection(self) -> Any:
        """The raw driver collection, for your own indexes and queries."""
        return self._collection

    # Indexes

    async def ensure_indexes(
        self,
        tenant_field: str | None = None,
        user_field: str | None = None,
        context_fields: Sequence[str] = (),
        auto_cleanup_days: float | None = None,
    ) -> list[str]:
        """Create the engine's indexes and the ones these options ask for.

        Safe to call on every start: only missing indexes are created.

        Args:
            tenant_field: A context key holding a tenant (the original
                library's multi-tenancy): indexes ``(context.<name>, status)``.
                The top-level ``tenant_id`` is always indexed with ``status``.
            user_field: A context key holding a user: indexes
                ``(context.<name>, created_at desc)``.
            context_fields: Context keys you filter on: ``context.<name>`` each.
            auto_cleanup_days: Expire terminal runs this many days after
                ``ended_at`` (a TTL index; MongoDB deletes by the server's
                wall clock, not the engine's ``Clock``).

        Returns:
            The names of the indexes created by this call.
        """
        specs = [
            *_indexes.CORE_INDEXES,
            *_indexes.LISTING_INDEXES,
            *_indexes.context_indexes(tenant_field, user_field, context_fields),
        ]
        if auto_cleanup_days is not None:
            specs.append(_indexes.ttl_index(auto_cleanup_days))
        created = await _indexes.ensure(self._collection, specs)
        self._core_ready = True
        return created

    async def _ensure_core(self) -> None:
        # The idempotency index must exist before the first insert, or two
        # racing starts could both insert. Checked once per store.
        if self._core_ready:
            return
        if self._core_lock is None:
            self._core_lock = asyncio.Lock()
        async with self._core_lock:
            if not self._core_ready:
                await _indexes.ensure(self._collection, _indexes.CORE_INDEXES)
                self._core_ready = True

    # Store protocol

    async def create(self, run: WorkflowRun) -> tuple[WorkflowRun, bool]:
        """Insert ``run``, or return the active run that holds its idempotency key.

        Raises:
            ConflictError: A run with this id exists.
        """
        await self._ensure_core()
        doc = run_to_mongo(run)
        keyed = run.idempotency_key is not None
        if keyed and doc["status"] in ACTIVE:
            doc[KEY_HOLD] = True  # take the key in the partial unique index
        for _ in range(_CREATE_ATTEMPTS):
            # The holder may be a run that does not hold the key in the index
            # (brought back to life by a transition), so look it up first.
            if keyed and (holder := await self._active_holder(run)) is not None:
                return holder, False
            with translated("insert a run", run.id):
                try:
                    await self._collection.insert_one(doc)
                except DuplicateKeyError:
                    pass  # the id exists, or a concurrent create took the key
                else:
                    return run_from_mongo(doc), True
            if keyed and (holder := await self._active_holder(run)) is not None:
                return holder, False
            if await self._exists(run.id):
                raise ConflictError(f"run {run.id!r} already exists", run_id=run.id)
            # The key's holder ended between our insert and our read: try again.
        raise ConflictError(
            f"run {run.id!r}: idempotency key {run.idempotency_key!r} kept changing hands",
            run_id=run.id,
        )

    async def _active_holder(self, run: WorkflowRun) -> WorkflowRun | None:
        with translated("read the idempotency key holder", run.id):
            doc = await self._collection.find_one(
                {
                    "workflow_id": run.workflow_id,
                    "tenant_id": run.tenant_id,
                    "idempotency_key": run.idempotency_key,
                    "status": {"$in": ACTIVE},
                }
            )
        return None if doc is None else run_from_mongo(doc)

    async def _exists(self, run_id: str) -> bool:
        with translated("read a run", run_id):
            doc = await self._collection.find_one({"_id": run_id}, projection={"_id": 1})
        return doc is not None

    async def get(self, run_id: str) -> WorkflowRun | None:
        """The run with this id, or ``None``."""
        with translated("read a run", run_id):
            doc = await self._collection.find_one({"_id": run_id})
        return None if doc is None else run_from_mongo(doc)

    async def claim(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: WorkflowFilter,
        tenant_id: str | None = None,
    ) -> list[WorkflowRun]:
        """Lease up to ``limit`` claimable runs to ``worker`` (priority desc, due time asc).

        Raises:
            DataCorruptionError: A leased document is not a valid run. It stays
                leased; the valid runs leased by this call are in the error's
                ``claimed`` attribute.
        """
        if limit <= 0 or not workflows:
            return []
        await self._ensure_core()
        claimable = claimable_filter(now, workflows, tenant_id)
        with translated("read claimable runs"):
            candidates = await self._collection.find(
                claimable,
                projection={"_id": 1, "revision": 1, "status": 1, "lease": 1},
                sort=CLAIM_ORDER,
                limit=limit * _CLAIM_OVERREAD,
            ).to_list(None)
        lease = {"owner": worker, "expires_at": to_storage(now + timedelta(seconds=lease_for))}
        leased: list[Document] = []
        for candidate in candidates:
            if len(leased) >= limit:
                break
            increments = {"revision": 1}
            if is_takeover(candidate.get("status"), candidate.get("lease")):
                increments["recoveries"] = 1
            with translated("lease a run", candidate["_id"]):
                doc = await self._collection.find_one_and_update(
                    {**claimable, "_id": candidate["_id"], "revision": candidate.get("revision")},
                    {"$set": {"lease": lease}, "$inc": increments},
                    return_document=ReturnDocument.AFTER,
                )
            if doc is not None:  # None: another worker got there first
                leased.append(doc)
        return leased_runs(leased, run_from_mongo)

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
    ) -> WorkflowRun:
        """Compare-and-set ``patch`` onto the run; returns the run as now stored.

        Raises:
            WorkflowNotFoundError: No run has this id.
            ConflictError: The revision is stale, or ``owner`` does not hold the lease.
            DataCorruptionError: The patch would leave an invalid run (nothing is written).
        """
        problem = patch_problem(patch)
        if problem is None:
            cas: Document = {"_id": run_id, "revision": expected_revision}
            if owner is not None:
                cas["lease.owner"] = owner
            cas.update(index_guards(patch))
            with translated("update a run", run_id):
                doc = await self._collection.find_one_and_update(
                    cas, update_for_patch(patch), return_document=ReturnDocument.AFTER
                )
            if doc is not None:
                return run_from_mongo(doc)
        raise await self._refusal(run_id, expected_revision, patch, owner, problem)

    async def _refusal(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None,
        problem: str | None,
    ) -> WorkflowError:
        """Why a transition was refused, read back after the fact (same order as
        every store: missing run, stale revision, foreign owner, bad patch)."""
        with translated("read a run", run_id):
            doc = await self._collection.find_one({"_id": run_id})
        if doc is None:
            return WorkflowNotFoundError(f"run {run_id!r} not found", run_id=run_id)
        revision = doc.get("revision")
        if revision != expected_revision:
            return ConflictError(
                f"run {run_id!r} is at revision {revision}, not {expected_revision}",
                run_id=run_id,
            )
        lease = doc.get("lease")
        if owner is not None and (not isinstance(lease, dict) or lease.get("owner") != owner):
            return ConflictError(f"run {run_id!r} is not leased to {owner!r}", run_id=run_id)
        if problem is None:
            problem = _missing_element(doc, patch)
        if problem is not None:
            return DataCorruptionError(
                f"refused a patch that would corrupt run {run_id!r}: {problem}", run_id=run_id
            )
        # Everything matches now, so the run changed and changed back in between.
        return ConflictError(f"run {run_id!r} changed concurrently", run_id=run_id)

    async def heartbeat(
        self, run_id: str, owner: str, now: datetime, lease_for: float
    ) -> RunStatus:
        """Extend ``owner``'s lease (``revision`` unchanged); returns the run's status.

        Raises:
            LeaseLostError: ``owner`` does not hold the lease, or the run does not exist.
        """
        with translated("extend a lease", run_id):
            doc = await self._collection.find_one_and_update(
                {"_id": run_id, "lease.owner": owner},
                {"$set": {"lease.expires_at": to_storage(now + timedelta(seconds=lease_for))}},
                projection={"status": 1},
                return_document=ReturnDocument.AFTER,
            )
        if doc is None:
            raise LeaseLostError(f"{owner!r} does not hold run {run_id!r}", run_id=run_id)
        try:
            return RunStatus(doc.get("status"))
        except ValueError:
            raise DataCorruptionError(
                f"stored run {run_id!r} has an invalid status {doc.get('status')!r}",
                run_id=run_id,
            ) from None

    async def find(self, query: RunQuery) -> RunPage:
        """One page of runs matching ``query``, keyset-paginated by ``query.cursor``.

        Raises:
            ValueError: ``query.cursor`` is malformed.
        """
        if query.limit is not None and query.limit <= 0:
            return RunPage(items=[])
        options: Document = {"sort": sort_spec(query)}
        if query.limit is not None:
            options["limit"] = query.limit + 1  # one more tells whether a next page exists
        where = page_filter(query)
        with translated("find runs"):
            docs = await self._collection.find(where, **options).to_list(None)
        runs = [run_from_mongo(d) for d in docs]
        if query.limit is None or len(runs) <= query.limit:
            return RunPage(items=runs)
        page = runs[: query.limit]
        field, _ = sort_key(query)
        last = page[-1]
        return RunPage(items=page, next_cursor=encode_cursor(getattr(last, field), last.id))

    async def count(self, query: RunQuery) -> int:
        """How many runs match ``query`` (cursor, sort and limit ignored)."""
        with translated("count runs"):
            return await self._collection.count_documents(query_filter(query))

    async def delete(self, query: RunQuery) -> int:
        """Delete the runs matching ``query``; returns how many."""
        with translated("delete runs"):
            result = await self._collection.delete_many(query_filter(query))
        return int(result.deleted_count)

    async def close(self) -> None:
        """Close the client if this store created it (``from_url``); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owned_client is not None:
            with translated("close the client"):
                await self._owned_client.close()


def _missing_element(doc: Mapping[str, Any], patch: Mapping[str, Any]) -> str | None:
    """The first list element a patch path addresses that ``doc`` lacks."""
    for prefix in list_index_paths(patch):
        target: Any = doc
        for part in prefix.split("."):
            if isinstance(target, list):
                index = int(part)
                target = target[index] if index < len(target) else None
            elif isinstance(target, Mapping):
                target = target.get(part)
            else:
                target = None
            if target is None:
                return f"patch path {prefix!r} addresses a list element that does not exist"
    return None
