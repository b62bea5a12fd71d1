"""The Store protocol: the one seam between the engine and a database.

Contracts layer: imports ``run`` only; every store implements it, the runtime calls it.

This docstring is the normative contract. A backend is correct when it keeps
every rule below; ``streamline_testing.conformance`` checks each of them.

Operations are *semantic* (claim, transition, heartbeat), never "run this
query". Time is passed in by the engine (``now``), so fake clocks in tests and
the conformance suite control expiry exactly; the one exception is a store
that judges lease expiry by its database's clock (``lease_clock``, below).

Documents
    A run is stored as the fields of :class:`~streamline_core.run.WorkflowRun`
    (``run_to_document``); reads go through ``run_from_document``, which turns
    an invalid document into ``DataCorruptionError``. Datetimes are aware UTC
    (every datetime returned has ``utcoffset()`` zero) and must round-trip
    with at least millisecond precision.

Required operations
    ``create(run, *, write_id=None) -> (run, created)``
        Insert atomically. When ``run.idempotency_key`` is set and an *active*
        (``draft``/``running``/``waiting``) run with the same
        ``(workflow_id, tenant_id, idempotency_key)`` exists, insert nothing
        and return ``(that_run, False)``. Race-safe: of N concurrent creates
        with one key exactly one inserts. Creating an id that exists raises
        ``ConflictError`` — unless the stored run is this create's own write
        (same ``write_id``, see below): then ``(stored, True)``. Keys
        constrain ``create`` only: a ``transition`` never fails because of an
        idempotency key (the engine refuses to revive a run whose key another
        active run holds).
    ``get(run_id) -> run | None``
        One run, read consistently (never a half-applied write).
    ``claim(worker, now, lease_for, limit, workflows, tenant_id=None) -> [run]``
        Atomically lease up to ``limit`` claimable runs to ``worker`` and
        return them as stored after the claim. Claimable means all of:
        status in ``draft``/``running``/``waiting``; ``next_run_at`` is set
        and ``<= now``; ``paused`` is false; ``lease`` is null or
        ``lease.expires_at <= now``; the run's workflow is in ``workflows``;
        and, when ``tenant_id`` is given (the empty string included),
        ``run.tenant_id == tenant_id``.
        ``workflows`` is either a collection of workflow names (any version)
        or a mapping of name to the versions the worker has registered, so a
        worker never claims a version it cannot run (:func:`workflow_matches`).
        Order: ``priority`` descending, then ``next_run_at`` ascending (then
        id, for stability). Each claimed run gets ``lease = {owner: worker,
        expires_at: now + lease_for}`` and ``revision + 1``; taking over an
        *expired* lease of a ``running`` run also does ``recoveries + 1``. A
        store may read candidates first, but each lease must be one
        conditional write whose filter repeats the claimable conditions and
        pins the revision it read: while a lease is live a run is never
        returned to two workers. A leased document that fails validation
        stays leased (so no worker spins on it); after leasing the batch the
        store raises ``DataCorruptionError`` for one such run (which one, when
        several, is unspecified), with the valid runs leased in the same call
        in its ``claimed`` attribute. A document whose version cannot be read
        is not selected by a versioned ``workflows`` mapping.
        :mod:`streamline_core.claiming` implements the parts of this rule
        that do not depend on the backend (the takeover test, the claim
        order of the result, the corrupt-document report). ``claim`` never
        leases a run with ``concurrency_key`` or ``rate_key`` set.
    ``transition(run_id, expected_revision, patch, owner=None) -> run``
        Compare-and-set. Apply ``patch`` only if the stored ``revision ==
        expected_revision`` and, when ``owner`` is given, ``lease.owner ==
        owner`` (an expired lease nobody took over still counts as owned).
        Bump ``revision`` by one and return the run as now stored. Otherwise
        raise ``ConflictError`` (stale revision, foreign or missing lease) or
        ``RunNotFound`` as ``WorkflowNotFoundError``. The write is all or
        nothing. This is the fencing token: a worker whose lease was taken
        over can never write again.
    ``write_id`` (``create`` and ``transition``, keyword, optional)
        An id the caller gives one logical write, and repeats when it sends
        that write again because the answer to the first attempt was lost (a
        network error or timeout after sending). The store remembers the
        write id of the write that produced each run's stored revision (in
        the same write: no extra round trip). A store that recognises its own
        applied write returns the stored run instead of refusing the repeat:
        a ``transition`` whose stored revision is ``expected_revision + 1``
        with this ``write_id`` returns the run as stored, a ``create`` whose
        run is stored, unchanged since, with this ``write_id`` returns
        ``(stored, True)``. Once a later write (a claim, any transition) moved
        the run on, the repeat is refused as before. ``None``: nothing to
        recognise (a store may still use ids of its own internally).
    ``heartbeat(run_id, owner, now, lease_for) -> RunStatus``
        If ``lease.owner == owner``, set ``lease.expires_at = now +
        lease_for`` and return the run's status (so the worker learns of a
        cancellation). Does **not** bump ``revision``. Otherwise raise
        ``LeaseLostError`` (also for an unknown run).
    ``find(query) -> RunPage`` / ``count(query) -> int`` / ``delete(query) -> int``
        Typed :class:`RunQuery` filters, combined with AND; see its fields
        (``parent_run_id`` selects a run's children: child runs carry
        ``parent_run_id``/``parent_step_id``/``detached``, which round-trip
        like every other field; a store with indexes should index
        ``parent_run_id``, which the engine queries on every join and cancel).
        ``find`` sorts by ``query.sort`` with the id as tie-breaker and pages
        with an opaque keyset cursor (``encode_cursor``/``decode_cursor``).
        ``delete`` removes only matching runs and returns how many.
    ``close()``
        Release connections and threads. Idempotent.

Flow-control operation (needed by workflows with ``concurrency=``/``rate_limit=``)
    ``claim_limited(worker, now, lease_for, limit, workflows, tenant_id=None, run_id=None)``
        ``claim`` for limited runs only (``run_id``: only that one), plus,
        atomically with its leases, never count-then-claim: every expired lease of a run with a
        ``concurrency_key`` is revoked first (``lease = null``, ``revision +
        1``, ``recoveries + 1`` if running); such a run is leased only while
        fewer than ``concurrency_limit`` runs of ``(workflow_id,
        concurrency_key)`` hold a live lease; a run with a ``rate_key`` and
        no ``began_at`` only while fewer than ``rate_limit`` runs of
        ``(workflow_id, rate_key)`` have ``began_at`` in ``(now -
        rate_period, now]`` (leasing sets ``began_at = now``); the others are
        skipped. Details: :class:`streamline_core.slots.LimitedClaims`.

Optional operations
    ``wait_for_work(timeout) -> bool``
        Return ``True`` as soon as a run may have become claimable and due
        (another process created, resumed or signalled one), ``False`` after
        ``timeout`` seconds. A hint only, for stores that can push (PostgreSQL
        ``LISTEN/NOTIFY``, MongoDB change streams): an idle worker under a
        real clock awaits it beside its poll delay, and still claims with its
        own ``now``; a missed notification costs at most one poll interval.
        It must be safe to cancel. Where the store cannot push (a standalone
        MongoDB), it sleeps ``timeout`` and returns ``False``.
    ``lease_clock`` (``"server"`` or ``"caller"``) and ``use_caller_clock()``
        A store whose database has a clock of its own may judge, in
        ``claim``, whether a lease expired by that clock (``"server"``:
        ``lease.expires_at <=`` the database's now, whatever ``now`` says),
        so a worker whose clock runs ahead never takes a live lease early;
        its ``heartbeat`` then sets ``expires_at`` to the database's now +
        ``lease_for``. Everything else keeps the caller's ``now`` (due times,
        the expiry a claim or a patch writes). ``use_caller_clock()``
        switches it to ``"caller"``
        (the rule above, with ``now``): an engine whose clock moves only when
        told (``FakeClock``) calls it when it is built, and the
        conformance suite runs stores in that mode.

Patches
    A patch maps a dotted path to its new value: a top-level field
    (``"status"``), an element of ``steps`` by index (``"steps.3"`` or
    ``"steps.3.status"``), or a key of a dict field (``"context.total"``,
    ``"meta.user"``). :data:`UNSET` as a value removes a dict key. Values are
    document values (``run_to_document`` shapes: dicts, lists, aware
    datetimes, JSON scalars). A patch touches only its paths; no two paths
    in one patch overlap. A value replaces whatever was at its path whole:
    dicts are never merged. :func:`apply_patch` implements this for stores
    that keep whole documents.

Errors
    Every backend exception is translated into ``streamline_core.errors``:
    ``ConflictError``, ``LeaseLostError``, ``StoreUnavailableError`` (transient:
    connection, timeout, lock contention), ``DataCorruptionError``,
    ``WorkflowNotFoundError``. Nothing backend-specific escapes.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from streamline_core._document_patch import UNSET, apply_patch, clone_document
from streamline_core._json import json_equal
from streamline_core.errors import ValidationError
from streamline_core.run import RunPage, RunStatus, WorkflowRun

__all__ = [
    "Store",
    "RunQuery",
    "UNSET",
    "SortKey",
    "WorkflowFilter",
    "apply_patch",
    "clone_document",
    "workflow_matches",
    "matches_query",
    "sort_key",
    "json_equal",
    "check_write_ids",
]


SortKey = Literal["created_at", "-created_at", "updated_at", "-updated_at"]

WorkflowFilter = Collection[str] | Mapping[str, Collection[str]]
"""``claim``'s ``workflows``: names (any version), or name -> registered versions."""


def workflow_matches(workflows: WorkflowFilter, workflow_id: str, version: str) -> bool:
    """Whether a run of ``workflow_id`` at ``version`` passes ``claim``'s ``workflows``."""
    if isinstance(workflows, Mapping):
        versions = workflows.get(workflow_id)
        return versions is not None and version in versions
    return workflow_id in workflows


@dataclass(frozen=True, slots=True)
class RunQuery:
    """A typed filter over runs. Every set field must match (AND).

    Attributes:
        workflow_id: One workflow name or several.
        status: One status or several.
        tenant_id: Exact tenant.
        run_ids: Only these ids.
        meta: Typed equality on ``meta.<key>`` for each item (``1`` never matches ``"1"``;
            a dict value is a value to compare, never a query operator).
        context: The same on ``context.<key>``.
        created_after: ``created_at >= created_after``.
        created_before: ``created_at < created_before``.
        updated_before: ``updated_at < updated_before`` (cleanup).
        waiting_for_event: Runs whose ``status == waiting`` and
            ``wait.kind == "event"`` and ``wait.event`` equals this name.
        hook_token_hash: Runs whose ``wait.hook_token_hash`` equals this.
        idempotency_key: Runs whose ``idempotency_key`` equals this.
        parent_run_id: Child runs of this run (``parent_run_id`` equals this).
        sort: ``created_at``/``updated_at``, ``-`` for descending; ties by id.
        limit: Page size for ``find`` (``None``: all). Ignored by count/delete.
        cursor: ``RunPage.next_cursor`` of the previous page.
    """

    workflow_id: str | Sequence[str] | None = None
    status: RunStatus | Sequence[RunStatus] | None = None
    tenant_id: str | None = None
    run_ids: Sequence[str] | None = None
    meta: Mapping[str, Any] | None = None
    context: Mapping[str, Any] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_before: datetime | None = None
    waiting_for_event: str | None = None
    hook_token_hash: str | None = None
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    sort: SortKey = "-created_at"
    limit: int | None = 50
    cursor: str | None = None

    def workflow_ids(self) -> tuple[str, ...] | None:
        """``workflow_id`` normalised to a tuple (``None`` when unfiltered)."""
        if self.workflow_id is None:
            return None
        if isinstance(self.workflow_id, str):
            return (self.workflow_id,)
        return tuple(self.workflow_id)

    def statuses(self) -> tuple[RunStatus, ...] | None:
        """``status`` normalised to a tuple of ``RunStatus`` (``None`` when unfiltered)."""
        if self.status is None:
            return None
        if isinstance(self.status, str):
            return (RunStatus(self.status),)
        return tuple(RunStatus(s) for s in self.status)


@runtime_checkable
class Store(Protocol):
    """The operations the engine needs from a backend; see the module docstring."""

    async def create(
        self, run: WorkflowRun, *, write_id: str | None = None
    ) -> tuple[WorkflowRun, bool]:
        """Insert ``run``, or return the active run holding its idempotency key."""
        ...

    async def get(self, run_id: str) -> WorkflowRun | None:
        """The run with this id, or ``None``."""
        ...

    async def claim(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: WorkflowFilter,
        tenant_id: str | None = None,
    ) -> list[WorkflowRun]:
        """Lease up to ``limit`` claimable runs to ``worker``."""
        ...

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        *,
        write_id: str | None = None,
    ) -> WorkflowRun:
        """Compare-and-set ``patch`` onto the run; returns the run as stored."""
        ...

    async def heartbeat(
        self, run_id: str, owner: str, now: datetime, lease_for: float
    ) -> RunStatus:
        """Extend ``owner``'s lease; returns the run's status."""
        ...

    async def find(self, query: RunQuery) -> RunPage:
        """One page of runs matching ``query``."""
        ...

    async def count(self, query: RunQuery) -> int:
        """How many runs match ``query``."""
        ...

    async def delete(self, query: RunQuery) -> int:
        """Delete the runs matching ``query``; returns how many."""
        ...

    async def close(self) -> None:
        """Release resources; idempotent."""
        ...


def check_write_ids(store: Any) -> None:
    """Refuse a store whose ``create``/``transition`` predate the ``write_id`` keyword.

    The engine passes ``write_id=`` on every commit, so such a store would
    fail each one with a ``TypeError`` from deep inside a step; it is refused
    when the engine is built instead.

    Raises:
        ValidationError: ``create`` or ``transition`` takes no ``write_id``.
    """
    for name in ("create", "transition"):
        method = getattr(store, name, None)
        try:
            params = inspect.signature(method).parameters if callable(method) else {}
        except (TypeError, ValueError):  # a builtin or C callable: nothing to check
            continue
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        if callable(method) and "write_id" not in params and not takes_any:
            raise ValidationError(
                f"{type(store).__name__}.{name}() takes no write_id keyword: the Store protocol "
                "gained it (a retried write is recognised as its own; streamline_core/store.py)"
            )


def sort_key(query: RunQuery) -> tuple[str, bool]:
    """``(field, descending)`` of ``query.sort``."""
    desc = query.sort.startswith("-")
    return query.sort.lstrip("-"), desc


def matches_query(run: WorkflowRun, query: RunQuery) -> bool:
    """Whether ``run`` satisfies every filter of ``query`` (cursor and limit aside).

    A reference implementation for stores that filter in Python.
    """
    wf = query.workflow_ids()
    if wf is not None and run.workflow_id not in wf:
        return False
    st = query.statuses()
    if st is not None and run.status not in st:
        return False
    if query.tenant_id is not None and run.tenant_id != query.tenant_id:
        return False
    if query.run_ids is not None and run.id not in query.run_ids:
        return False
    for field, filt in (("meta", query.meta), ("context", query.context)):
        if filt:
            data = getattr(run, field)
            for k, v in filt.items():
                if k not in data or not json_equal(data[k], v):
                    return False
    if query.created_after is not None and run.created_at < query.created_after:
        return False
    if query.created_before is not None and run.created_at >= query.created_before:
        return False
    if query.updated_before is not None and run.updated_at >= query.updated_before:
        return False
    if query.waiting_for_event is not None and not (
        run.status == RunStatus.WAITING
        and run.wait is not None
        and run.wait.kind == "event"
        and run.wait.event == query.waiting_for_event
    ):
        return False
    if query.idempotency_key is not None and run.idempotency_key != query.idempotency_key:
        return False
    if query.parent_run_id is not None and run.parent_run_id != query.parent_run_id:
        return False
    return not (
        query.hook_token_hash is not None
        and (run.wait is None or run.wait.hook_token_hash != query.hook_token_hash)
    )
