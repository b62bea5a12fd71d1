"""``MongoStore``: the Store contract on one MongoDB collection.

Every write is one atomic server operation on one document (the reads
around some of them only decide what to return or which error to raise):

* ``create`` is an ``insert_one``; idempotency is a partial unique index
  over the runs holding their key, and the loser of a race reads the winner
  back (a keyed create also looks the key's active holder up first).
* ``claim`` leases one run per ``find_one_and_update`` sorted in claim order
  over the unleased claimable runs, so each write takes the best run still
  free when it reaches the server (workers never race for one candidate
  list). Expired leases are read first (a short, indexed list) and taken one
  by one, pinned to the revision read, where they rank in the claim order;
  a takeover of a ``running`` run also counts a recovery.
* ``transition`` is a ``find_one_and_update`` filtered on ``revision`` (and
  ``lease.owner``) that ``$set``/``$unset``s only the patched paths and
  ``$inc``s ``revision``; when it matches nothing, a follow-up read says why.
* ``heartbeat`` is a ``find_one_and_update`` on ``lease.owner`` that moves
  ``lease.expires_at`` only.

Each create and transition writes a fresh ``write_id`` into the document.
When a write's answer is lost after it was sent (a network error, a
write-concern timeout), the store reads the run back: our ``write_id`` at
the expected revision + 1 means the write was applied, and its result is
returned instead of an error (or, when even that read fails, on the caller's
retry of the same write: same run, revision and owner).

Lease expiry is judged by the server's clock (``$$NOW`` in the claim's
filters) unless the store judges by the caller's ``now``
(``lease_clock="caller"``, always on mongomock, which has no ``$$NOW``).

Only operations that behave the same on MongoDB and on mongomock are used
(DESIGN.md §8; the full list of differences is in docs/mongo.md), ``$$NOW``
aside: the tests emulate it in a proxy.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

import pymongo
from pymongo import ReadPreference, ReturnDocument
from pymongo.errors import DuplicateKeyError
from pymongo.write_concern import WriteConcern

from streamline_core.claiming import is_takeover, leased_runs
from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    LeaseLostError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
    WorkflowError,
    WorkflowNotFoundError,
)
from streamline_core.run import RunPage, RunStatus, WorkflowRun, encode_cursor
from streamline_core.store import RunQuery, WorkflowFilter, sort_key

from . import _indexes, _limits
from ._documents import KEY_HOLD, WRITE_MARK, run_from_mongo, run_to_mongo, to_storage
from ._errors import describe, duplicate_index, is_ambiguous, translated
from ._query import (
    ACTIVE,
    CLAIM_ORDER,
    check_run_id,
    claimable_filter,
    expired_filter,
    free_filter,
    page_filter,
    query_filter,
    ranks_before,
    sort_spec,
)
from ._types import Document, MongoCollection, MongoDatabase
from ._update import index_guards, list_index_paths, patch_problem, update_for_patch
from ._wakeups import ChangeWatcher

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient

__all__ = ["MongoStore", "MAJORITY_JOURNALED"]

MAJORITY_JOURNALED: Final = WriteConcern(w="majority", j=True)
"""The default write concern: a write is acknowledged once a majority of the
replica set has it in its journal, so an acknowledged step commit survives a
failover (DESIGN.md §5: nothing acknowledged is lost)."""

DEFAULT_TIMEOUT: Final = 10.0
"""``from_url``'s ``timeoutMS`` (in seconds) when the URL sets none: how long one
operation may take, server selection and the driver's retry included."""

log = logging.getLogger("streamline.mongo")

_CREATE_ATTEMPTS = 5
_LOST_ANSWERS_KEPT = 1024  # writes whose answer was lost, remembered for the caller's retry
_OWN_INDEXES = frozenset({"_id_", _indexes.IDEMPOTENCY_INDEX.name, "streamline_idempotency"})
_EXPIRED_PROJECTION: Final = {
    "_id": 1,
    "revision": 1,
    "status": 1,
    "lease": 1,
    "priority": 1,
    "next_run_at": 1,
}


def _new_write_id() -> str:
    return uuid.uuid4().hex


class MongoStore:
    """A Store on a MongoDB collection (PyMongo async API; Motor databases accepted).

    Args:
        db: A ``pymongo.AsyncMongoClient`` database, or a Motor (or
            mongomock-motor) database. The caller keeps ownership of its
            client: :meth:`close` does not close it.
        collection: Name of the collection holding one document per run.
        write_concern: Write concern of every write. Defaults to majority +
            journal; ``None`` inherits the database's.
        timeout: Seconds one store operation may take in all (PyMongo's
            ``timeout()``, i.e. ``timeoutMS``: server selection, the
            driver's retry and the server's work; it replaces the client's
            ``serverSelectionTimeoutMS``). ``None`` (the default) leaves the
            client's own settings: give your client ``timeoutMS``;
            ``from_url`` does (:data:`DEFAULT_TIMEOUT` unless the URL sets
            one). A heartbeat is always bounded by a third of the lease.
        auto_indexes: Create the engine's indexes on first use (the
            default). ``False`` only checks that they exist and fails with a
            configuration error naming the missing ones: for a database user
            without index privileges, with indexes made by a deploy job.
        commit_quorum: ``commitQuorum`` of index builds on a replica set,
            when given (e.g. ``"majority"``, or ``1`` during maintenance).
        lease_clock: ``"server"``: a claim judges whether a lease expired
            by the server's clock (``$$NOW``), so a worker whose clock runs
            ahead never takes a live lease over early. ``"caller"``: by the
            ``now`` the engine passes, as every store does without a clock
            of its own. ``None`` (the default): ``"server"``, except on
            mongomock (no ``$$NOW``), where it is ``"caller"``. An engine on a clock that moves
            only when told (``FakeClock``) switches its store to ``"caller"``
            (:meth:`use_caller_clock`).

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
        timeout: float | None = None,
        auto_indexes: bool = True,
        commit_quorum: int | str | None = None,
        lease_clock: Literal["server", "caller"] | None = None,
    ) -> None:
        if timeout is not None and not timeout > 0:
            raise ValidationError(f"timeout must be positive seconds or None, not {timeout!r}")
        if lease_clock not in ("server", "caller", None):
            raise ValidationError(f"lease_clock must be 'server' or 'caller', not {lease_clock!r}")
        self._server_clock = lease_clock == "server" or (
            lease_clock is None and not _is_mongomock(db)
        )
        self._db = db
        self._name = collection
        self._timeout = timeout
        self._auto_indexes = auto_indexes
        self._commit_quorum = commit_quorum
        # (run id, expected revision, owner) -> write id of a transition whose
        # answer was lost, so the caller's retry can recognise it as applied.
        self._lost: OrderedDict[tuple[str, int, str | None], str] = OrderedDict()
        # Primary reads: a CAS follow-up read or a get() right after a commit
        # must see that commit, whatever read preference the database has.
        self._collection: MongoCollection = db.get_collection(
            collection, read_preference=ReadPreference.PRIMARY, write_concern=write_concern
        )
        self._owned_client: AsyncMongoClient[Document] | None = None
        self._closed = False
        self._core_ready = False
        self._core_lock: asyncio.Lock | None = None
        self._watcher = ChangeWatcher(self._collection)

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
    def lease_clock(self) -> Literal["server", "caller"]:
        """Whose clock a claim judges lease expiry by (see the constructor)."""
        return "server" if self._server_clock else "caller"

    def use_caller_clock(self) -> None:
        """Judge lease expiry by the ``now`` each claim is given from here on.

        Called by an engine whose clock moves only when told (``FakeClock``):
        the server's clock would ignore that time.
        """
        self._server_clock = False

    @property
    def collection(self) -> Any:
        """The raw driver collection, for your own indexes and queries."""
        return self._collection

    @contextmanager
    def _call(
        self, action: str, run_id: str | None = None, timeout: float | None = None
    ) -> Iterator[None]:
        """Translate errors and bound the time of the driver calls inside."""
        seconds = self._timeout if timeout is None else timeout
        with translated(action, run_id):
            if seconds is None:
                yield
            else:
                with pymongo.timeout(seconds):
                    yield

    # Indexes

    async def ensure_indexes(
        self,
        tenant_field: str | None = None,
        user_field: str | None = None,
        context_fields: Sequence[str] = (),
        auto_cleanup_days: float | None = None,
    ) -> list[str]:
        """Create the engine's indexes and the ones these options ask for.

        Safe to call on every start: only missing indexes are created, a
        changed TTL period is applied in place (``collMod``), and indexes of
        earlier versions are dropped once their replacements exist. It also
        gives runs written by versions before 0.2 the ``is_active`` marker the
        claim needs. With ``auto_indexes=False`` it only checks.

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
            The names of the indexes created (or altered) by this call.

        Raises:
            StoreError: ``auto_indexes=False`` and some indexes are missing.
        """
        specs = [
            *_indexes.CORE_INDEXES,
            *_indexes.LISTING_INDEXES,
            *_indexes.context_indexes(tenant_field, user_field, context_fields),
        ]
        if auto_cleanup_days is not None:
            specs.append(_indexes.ttl_index(auto_cleanup_days))
        created = await self._ensure(specs)
        if self._auto_indexes:
            await _indexes.mark_active(self._collection)
        self._core_ready = True
        return created

    async def _ensure(self, specs: Sequence[_indexes.IndexSpec]) -> list[str]:
        # No per-operation bound here: an index build takes as long as the
        # collection is big (the client's own timeouts still apply).
        return await _indexes.ensure(
            self._collection, specs, create=self._auto_indexes, commit_quorum=self._commit_quorum
        )

    async def _ensure_core(self) -> None:
        # The idempotency index must exist before the first insert, or two
        # racing starts could both insert. Checked once per store.
        if self._core_ready:
            return
        if self._core_lock is None:
            self._core_lock = asyncio.Lock()
        async with self._core_lock:
            if not self._core_ready:
                created = await self._ensure(_indexes.CORE_INDEXES)
                if _indexes.CLAIM_FREE_INDEX.name in created:
                    # First start of this version on this collection: older
                    # runs get the marker the claim filters on.
                    await _indexes.mark_active(self._collection)
                self._core_ready = True

    # Store protocol

    async def create(
        self, run: WorkflowRun, *, write_id: str | None = None
    ) -> tuple[WorkflowRun, bool]:
        """Insert ``run``, or return the active run that holds its idempotency key.

        ``write_id`` (a fresh one when ``None``) is stored with the run: a
        repeat of this create finds it and returns ``(stored, True)``.

        Raises:
            ConflictError: A run with this id exists.
            ValidationError: A value cannot be stored, or a unique index of
                your own on the collection refused the run.
        """
        check_run_id(run.id)
        await self._ensure_core()
        doc = run_to_mongo(run)
        keyed = run.idempotency_key is not None
        if keyed and doc["status"] in ACTIVE:
            doc[KEY_HOLD] = True  # take the key in the partial unique index
        write_id = write_id or _new_write_id()
        doc[WRITE_MARK] = write_id
        refused_by: str | None = None
        lost_answer = False
        for _ in range(_CREATE_ATTEMPTS):
            # The holder may be a run that does not hold the key in the index
            # (brought back to life by a transition), so look it up first.
            if keyed and (holder := await self._active_holder(run)) is not None:
                return holder, False
            try:
                with self._call("insert a run", run.id):
                    try:
                        await self._collection.insert_one(dict(doc))
                    except DuplicateKeyError as exc:
                        refused_by = duplicate_index(exc)
                    else:
                        return run_from_mongo(doc), True
            except StoreUnavailableError as exc:
                if not is_ambiguous(exc) or lost_answer:
                    raise
                # The answer was lost: the insert may have been applied.
                lost_answer = True
                stored = await self._read(run.id)
                if stored is not None and stored.get(WRITE_MARK) == write_id:
                    return run_from_mongo(stored), True
                if stored is not None:
                    raise ConflictError(f"run {run.id!r} already exists", run_id=run.id) from None
                # Not applied as far as we can see: insert once more. Should the
                # first request still land first, the id makes the second one a
                # duplicate, and the write id below recognises it as ours.
                continue
            if keyed and (holder := await self._active_holder(run)) is not None:
                return holder, False
            stored = await self._read(run.id)
            if stored is not None:
                if stored.get(WRITE_MARK) == write_id:
                    return run_from_mongo(stored), True  # our own insert, answered late
                raise ConflictError(f"run {run.id!r} already exists", run_id=run.id)
            if not keyed or (refused_by is not None and refused_by not in _OWN_INDEXES):
                break  # neither the id nor the key: a unique index of the user's own
            # The key's holder ended between our insert and our read: try again.
        raise ValidationError(
            f"run {run.id!r} was refused by a unique index on the runs collection "
            f"({refused_by or 'not its id, and no active run holds its idempotency key'}): "
            "a unique index of your own rejects this run's values",
            run_id=run.id,
        )

    async def _active_holder(self, run: WorkflowRun) -> WorkflowRun | None:
        with self._call("read the idempotency key holder", run.id):
            doc = await self._collection.find_one(
                {
                    "workflow_id": {"$eq": run.workflow_id},
                    "tenant_id": {"$eq": run.tenant_id},
                    "idempotency_key": {"$eq": run.idempotency_key},
                    "status": {"$in": ACTIVE},
                }
            )
        return None if doc is None else run_from_mongo(doc)

    async def _read(self, run_id: str) -> Document | None:
        with self._call("read a run", run_id):
            doc: Document | None = await self._collection.find_one({"_id": run_id})
        return doc

    async def get(self, run_id: str) -> WorkflowRun | None:
        """The run with this id, or ``None``.

        Raises:
            ValidationError: ``run_id`` is not a string.
        """
        doc = await self._read(check_run_id(run_id))
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

        A failure part-way through returns the runs already leased (and
        logs the failure): dropping them would strand them until their
        leases expire. A failure before any lease is raised.

        Raises:
            DataCorruptionError: A leased document is not a valid run. It stays
                leased; the valid runs leased by this call are in the error's
                ``claimed`` attribute.
        """
        check_run_id(worker, "worker")
        if limit <= 0 or not workflows:
            return []
        await self._ensure_core()
        # Limited runs are claim_limited's alone (streamline_core.slots).
        base = {
            **claimable_filter(now, workflows, tenant_id),
            "concurrency_key": None,
            "rate_key": None,
        }
        claim_id = _new_write_id()
        lease = {"owner": worker, "expires_at": to_storage(now + timedelta(seconds=lease_for))}
        leased: dict[Any, Document] = {}
        try:
            await self._lease_batch(base, now, lease, claim_id, limit, leased)
        except StoreError as exc:
            if is_ambiguous(exc):
                await self._recover_claimed(lease, claim_id, leased)
            if not leased:
                raise
            log.warning(
                "claim by %s: returning the %d runs leased before a failure: %s",
                worker,
                len(leased),
                describe(exc),
            )
        return leased_runs(leased.values(), run_from_mongo)

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

        The contract is :class:`streamline_core.slots.LimitedClaims`; slot
        tokens under unique indexes make it strict without transactions
        (:mod:`streamline_mongo._limits`).
        """
        check_run_id(worker, "worker")
        if limit <= 0 or not workflows:
            return []
        await self._ensure_core()
        await _limits.revoke_expired(self._collection, self._call, now)
        query = _limits.limited_filter(claimable_filter(now, workflows, tenant_id), now, run_id)
        with self._call("read claimable limited runs"):
            candidates = await self._collection.find(
                query, projection=_limits.PROJECTION, sort=CLAIM_ORDER
            ).to_list(None)
        claim_id = _new_write_id()
        lease = {"owner": worker, "expires_at": to_storage(now + timedelta(seconds=lease_for))}
        leased: dict[Any, Document] = {}
        full: set[tuple[Any, ...]] = set()
        for candidate in candidates:
            if len(leased) >= limit:
                break
            bucket = (
                candidate.get("workflow_id"),
                candidate.get("concurrency_key"),
                candidate.get("rate_key") if candidate.get("began_at") is None else None,
            )
            if bucket in full:
                continue
            doc = await _limits.lease_limited(
                self._collection, self._call, candidate, now, lease, claim_id
            )
            if doc is _limits.FULL:
                full.add(bucket)
            elif doc is not None:
                leased[doc["_id"]] = doc
        return leased_runs(leased.values(), run_from_mongo)

    async def _lease_batch(
        self,
        base: Document,
        now: datetime,
        lease: Document,
        claim_id: str,
        limit: int,
        leased: dict[Any, Document],
    ) -> None:
        """Lease runs into ``leased`` (by id) until ``limit`` or none is left."""
        with self._call("read expired leases"):
            expired = await self._collection.find(
                expired_filter(base, now, server_clock=self._server_clock),
                projection=_EXPIRED_PROJECTION,
                sort=CLAIM_ORDER,
                limit=limit,
            ).to_list(None)
        # How many free runs are due (up to the limit), so that an idle poll
        # costs two indexed reads and no write. The writes below do not pin
        # these ids: each takes whichever free run ranks first when it reaches
        # the server, so workers polling together never fight over one list.
        with self._call("read claimable runs"):
            free_due = await self._collection.find(
                free_filter(base), projection={"_id": 1}, sort=CLAIM_ORDER, limit=limit
            ).to_list(None)
        fresh = {"$set": {"lease": lease, WRITE_MARK: claim_id}, "$inc": {"revision": 1}}
        free_left = len(free_due)
        while len(leased) < limit and (free_left > 0 or expired):
            boundary = expired[0] if expired else None
            free = free_filter(base)
            if boundary is not None:
                # Free runs first only while they rank before the next expired one.
                free = ranks_before(
                    free,
                    boundary.get("priority"),
                    to_storage(boundary.get("next_run_at")),
                    boundary["_id"],
                )
            doc = None
            if free_left > 0:
                with self._call("lease a run"):
                    doc = await self._collection.find_one_and_update(
                        free, fresh, sort=CLAIM_ORDER, return_document=ReturnDocument.AFTER
                    )
                if doc is not None:
                    free_left -= 1
                elif boundary is None:
                    return  # the free runs went to other workers meanwhile
            if doc is None:
                if boundary is None:
                    return
                expired.pop(0)
                doc = await self._take_over(base, now, lease, claim_id, boundary)
                if doc is None:
                    continue  # another worker got there first
            leased[doc["_id"]] = doc

    async def _take_over(
        self, base: Document, now: datetime, lease: Document, claim_id: str, candidate: Document
    ) -> Document | None:
        increments = {"revision": 1}
        if is_takeover(candidate.get("status"), candidate.get("lease")):
            increments["recoveries"] = 1
        with self._call("lease a run", candidate["_id"]):
            doc: Document | None = await self._collection.find_one_and_update(
                {
                    **expired_filter(base, now, server_clock=self._server_clock),
                    "_id": candidate["_id"],
                    "revision": candidate.get("revision"),
                },
                {"$set": {"lease": lease, WRITE_MARK: claim_id}, "$inc": increments},
                return_document=ReturnDocument.AFTER,
            )
        return doc

    async def _recover_claimed(
        self, lease: Document, claim_id: str, leased: dict[Any, Document]
    ) -> None:
        """Add the runs this claim leased whose answers were lost (best effort)."""
        try:
            with self._call("read the runs a failed claim leased"):
                docs = await self._collection.find(
                    {"is_active": True, "lease": lease, WRITE_MARK: claim_id}
                ).to_list(None)
        except StoreError:
            return  # the leases expire; the runs are claimed again then
        for doc in docs:
            leased.setdefault(doc["_id"], doc)

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        *,
        write_id: str | None = None,
    ) -> WorkflowRun:
        """Compare-and-set ``patch`` onto the run; returns the run as now stored.

        ``write_id`` (else the id remembered from a lost answer, else a fresh
        one) is stored with the new revision: a repeat of an applied write
        returns the run as stored.

        Raises:
            WorkflowNotFoundError: No run has this id.
            ConflictError: The revision is stale, or ``owner`` does not hold the lease.
            DataCorruptionError: The patch would leave an invalid run (nothing is written).
            ValidationError: A value cannot be stored (too large, not
                encodable), or a unique index of your own refused the write.
        """
        check_run_id(run_id)
        if type(expected_revision) is not int:
            raise ValidationError(f"expected_revision must be an int, not {expected_revision!r}")
        if owner is not None:
            check_run_id(owner, "owner")
        key = (run_id, expected_revision, owner)
        # The retry of a write whose answer was lost reuses its id, so that
        # the refusal below recognises the write as already applied.
        write_id = write_id or self._lost.get(key) or _new_write_id()
        problem = patch_problem(patch)
        if problem is None:
            cas: Document = {"_id": run_id, "revision": expected_revision}
            if owner is not None:
                cas["lease.owner"] = owner
            cas.update(index_guards(patch))
            try:
                with self._call("update a run", run_id):
                    doc = await self._collection.find_one_and_update(
                        cas,
                        update_for_patch(patch, write_id),
                        return_document=ReturnDocument.AFTER,
                    )
            except ConflictError as exc:
                # Only a unique index can refuse an update with a duplicate key,
                # and the store's own never covers a transition: it is the
                # user's. Not a lost race, so never retried as one.
                raise ValidationError(
                    f"run {run_id!r}: a unique index on the runs collection refused the "
                    f"write ({exc})",
                    run_id=run_id,
                ) from exc.__cause__
            except StoreUnavailableError as exc:
                if not is_ambiguous(exc):
                    raise
                applied = await self._applied(key, write_id)
                if applied is None:
                    raise
                return applied
            if doc is not None:
                self._lost.pop(key, None)
                return run_from_mongo(doc)
        outcome = await self._refusal(run_id, expected_revision, patch, owner, problem, write_id)
        self._lost.pop(key, None)
        if isinstance(outcome, WorkflowRun):
            return outcome
        raise outcome

    async def _applied(self, key: tuple[str, int, str | None], write_id: str) -> WorkflowRun | None:
        """After a lost answer: the run, if our write was applied; ``None`` if unknown."""
        run_id, expected_revision, _ = key
        try:
            doc = await self._read(run_id)
        except StoreError:
            doc = None
        if (
            doc is not None
            and doc.get("revision") == expected_revision + 1
            and doc.get(WRITE_MARK) == write_id
        ):
            self._lost.pop(key, None)
            return run_from_mongo(doc)
        if doc is None or doc.get("revision") == expected_revision:
            # Not applied yet as far as we can tell, but the request may still
            # be on its way: remember the id for the caller's retry.
            self._lost[key] = write_id
            self._lost.move_to_end(key)
            while len(self._lost) > _LOST_ANSWERS_KEPT:
                self._lost.popitem(last=False)
        return None

    async def _refusal(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None,
        problem: str | None,
        write_id: str,
    ) -> WorkflowError | WorkflowRun:
        """Why a transition was refused, read back after the fact (same order as
        every store: missing run, stale revision, foreign owner, bad patch) — or
        the run, when the refusal is of a retry whose first attempt was applied."""
        doc = await self._read(run_id)
        if doc is None:
            return WorkflowNotFoundError(f"run {run_id!r} not found", run_id=run_id)
        revision = doc.get("revision")
        if revision == expected_revision + 1 and doc.get(WRITE_MARK) == write_id:
            return run_from_mongo(doc)  # our earlier attempt, whose answer was lost
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

        A heartbeat gets at most a third of the lease: one that takes longer
        is late anyway, and the next one must still find the lease alive.
        With ``lease_clock="server"`` the new expiry is the server's clock
        plus ``lease_for`` (``$$NOW`` in an update pipeline), the clock claims
        judge it by, so a renewal lasts ``lease_for`` whatever the worker's
        clock says.

        Raises:
            LeaseLostError: ``owner`` does not hold the lease, or the run does not exist.
        """
        check_run_id(run_id)
        check_run_id(owner, "owner")
        bound = lease_for / 3 if lease_for > 0 else None
        if self._timeout is not None:
            bound = self._timeout if bound is None else min(bound, self._timeout)
        renewal: Any
        if self._server_clock:
            later = {"$add": ["$$NOW", round(lease_for * 1000)]}  # milliseconds
            renewal = [{"$set": {"lease.expires_at": later}}]
        else:
            renewal = {"$set": {"lease.expires_at": to_storage(now + timedelta(seconds=lease_for))}}
        with self._call("extend a lease", run_id, timeout=bound):
            doc = await self._collection.find_one_and_update(
                {"_id": run_id, "lease.owner": owner},
                renewal,
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
            ValidationError: A filter value is not of its field's type.
        """
        if query.limit is not None and query.limit <= 0:
            return RunPage(items=[])
        options: Document = {"sort": sort_spec(query)}
        if query.limit is not None:
            options["limit"] = query.limit + 1  # one more tells whether a next page exists
        where = page_filter(query)
        with self._call("find runs"):
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
        where = query_filter(query)
        with self._call("count runs"):
            return await self._collection.count_documents(where)

    async def delete(self, query: RunQuery) -> int:
        """Delete the runs matching ``query``; returns how many."""
        where = query_filter(query)
        with self._call("delete runs"):
            result = await self._collection.delete_many(where)
        return int(result.deleted_count)

    async def wait_for_work(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a run to become claimable and due.

        The optional Store operation an idle worker awaits beside its poll
        delay. On a replica set a task of the store watches the collection
        with a change stream (opened on first use, reopened after a failure)
        and wakes the waiters when a write leaves a run active, unleased,
        unpaused and due by the server's clock. On a standalone server (no
        change streams) it sleeps ``timeout`` and returns ``False``: polling
        is the path there. A hint only; safe to cancel.

        Returns:
            Whether a write made a run due (``False`` on timeout).
        """
        return await self._watcher.wait(timeout)

    async def close(self) -> None:
        """Close the client if this store created it (``from_url``); idempotent."""
        if self._closed:
            return
        self._closed = True
        await self._watcher.close()
        if self._owned_client is not None:
            with translated("close the client"):
                await self._owned_client.close()


def _is_mongomock(db: Any) -> bool:
    """Whether ``db`` (or its client) is mongomock's, which has no ``$$NOW``."""
    for obj in (db, getattr(db, "client", None)):
        if any(k.__module__.startswith("mongomock") for k in type(obj).__mro__):
            return True
    return False


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
