"""``SQLiteStore``: the Store contract on the standard library's ``sqlite3``.

Threads, not aiosqlite
    ``sqlite3`` is blocking, so something must keep its calls off the event
    loop. aiosqlite runs one thread per connection and awaits every single
    statement through it, which makes a transition several thread hops and
    gives no say over how statements group into transactions. Here a
    dedicated daemon *writer thread* owns the only write connection and runs
    whole operations (read, check, write) as plain functions, so an operation
    is one hop, and the writer decides what shares a transaction. A second
    daemon thread with its own connection serves reads (WAL lets them run
    beside the writer). Callers await asyncio futures the threads settle with
    ``loop.call_soon_threadsafe``. Both threads are daemons: a store that is
    never closed cannot keep the process alive. ``sqlite3`` releases the GIL
    while SQLite works, so an fsync never stalls the loop. A ``:memory:``
    database exists per connection, so it gets the writer thread only.

Group commit
    Every write (create, claim, transition, heartbeat, delete) goes to the
    writer's queue. The writer takes whatever is queued — never waiting for
    more, so a lone write commits at once — and runs it in one ``BEGIN
    IMMEDIATE … COMMIT``; each caller is answered only after that COMMIT has
    returned. At ``synchronous=FULL`` the fsync dominates a commit, so N
    concurrent writes cost about one fsync instead of N. It is safe because:

    * the jobs run one after another inside the transaction, each seeing the
      writes of those before it, so the outcome is exactly that of the same
      operations committed one by one in queue order;
    * each job makes every check (revision, lease owner, idempotency key,
      validity of the patched run) before its one write statement, and SQLite
      undoes a failed statement alone, so a job that fails — a stale revision,
      a foreign owner, a missing run — has written nothing, raises its own
      error, and does not disturb the rest of the batch (a claim leases a
      corrupt document too, so no worker spins on it, and reports it after
      the valid runs it leased);
    * if SQLite ends the transaction (I/O error, disk full) or COMMIT fails,
      every job of the batch fails: nothing is acknowledged that is not on
      disk;
    * ``BEGIN IMMEDIATE`` takes the database write lock for the whole batch,
      so other processes see all of it or none of it, and their own writes
      (claims included) wait on the busy timeout rather than interleave.

    Cancelling an awaiting caller does not withdraw its write: once queued it
    commits or fails like any other.

    Writes wait for the end of the event loop's iteration, so the writes of
    every task the loop ran in that iteration form one batch. When the
    writer thread is idle (the usual case) that batch commits inline on the
    loop's thread, in the same kind of transaction, saving the two thread
    wake-ups a hand-over costs — about a third of a sequential step — and it
    never waits for another process's lock there: the connection fails fast
    and the batch goes to the thread, which waits out ``busy_timeout``.

Transitions
    A transition decodes the stored document (``pydantic_core.from_json``),
    applies the patch, validates the result and writes the validated run
    back as JSON (``model_dump_json``, ``None`` fields left out). The
    patch's values are first turned into exactly what the stored text gives
    back (ISO text for datetimes inside JSON data, lists for tuples, plain
    values for enums), so the returned run equals a later read; a value JSON
    cannot hold is refused before anything is written. Only columns whose
    value changed are assigned.

Multiple processes
    Any number of stores, in any number of processes, may open one file.
    Every write runs under ``BEGIN IMMEDIATE`` and re-reads what it checks
    inside that transaction, so claims are exclusive and CAS is exact across
    processes; a claim is one ``UPDATE … WHERE id IN (SELECT … LIMIT n)
    RETURNING doc`` whose inner query repeats the claimable conditions.

Durability
    WAL mode with ``synchronous=FULL`` by default: a write is acknowledged
    after it is in the fsynced WAL.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Mapping
from contextlib import closing
from datetime import datetime, timedelta
from typing import Any

import pydantic_core

from streamline_core.claiming import leased_runs
from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    LeaseLostError,
    StoreUnavailableError,
    WorkflowError,
    WorkflowNotFoundError,
)
from streamline_core.run import (
    Lease,
    RunPage,
    RunStatus,
    WorkflowRun,
    encode_cursor,
    run_from_document,
)
from streamline_core.store import RunQuery, WorkflowFilter, apply_patch, json_equal, sort_key
from streamline_sqlite._codec import (
    COLUMNS,
    changed_columns,
    columns,
    encode_run,
    load_run,
    micros,
    own_write,
    stored_values,
    with_write_id,
)
from streamline_sqlite._file import FileIdentity
from streamline_sqlite._limits import candidates_sql, claim_limited_rows
from streamline_sqlite._query import after_cursor, dicts_match, order_by, where
from streamline_sqlite._schema import (
    ACTIVE_SQL,
    CLAIMABLE_SQL,
    PLAIN_SQL,
    SYNCHRONOUS_MODES,
    check_sqlite_version,
    connect,
    ensure_schema,
    explain_open_failure,
    prepare_path,
)
from streamline_sqlite._worker import Worker

__all__ = ["SQLiteStore"]

_INSERT = (
    f"INSERT INTO runs (id, {', '.join(COLUMNS)}, doc) "
    f"VALUES (?, {', '.join('?' for _ in COLUMNS)}, ?)"
)
_SELECT_FOR_UPDATE = f"SELECT doc, {', '.join(COLUMNS)} FROM runs WHERE id = ?"
_SELECT_WRITE_ID = "SELECT json_extract(doc, '$._write_id'), revision, doc FROM runs WHERE id = ?"
_REVISION = COLUMNS.index("revision")
_LEASE_OWNER = COLUMNS.index("lease_owner")


@functools.lru_cache(maxsize=512)
def _update_sql(changed: tuple[int, ...]) -> str:
    # SQLite maintains an index only when the UPDATE assigns one of its
    # columns, and every touched index page is one more WAL frame to write
    # and fsync; so a transition assigns only the columns whose value changed.
    assignments = "".join(f"{COLUMNS[i]} = ?, " for i in changed)
    return f"UPDATE runs SET {assignments}doc = ? WHERE id = ? AND revision = ?"


# Matches the partial unique index runs_idempotency term by term.
_ACTIVE_BY_KEY = (
    "SELECT doc FROM runs WHERE workflow_id = ? AND (tenant_id IS NULL) = ? "
    f"AND ifnull(tenant_id, '') = ? AND idempotency_key = ? AND {ACTIVE_SQL}"
)
# Column references in SET read the row as it was before the update, so
# lease_owner/status below are the claimed run's previous values. INDEXED BY:
# left alone, the planner prefers runs_workflow and walks every run of the
# workflow, finished ones included; runs_claimable holds only active, unpaused,
# due-dated runs in claim order, so a claim reads O(log n + limit) rows.
# A document that is not JSON would make json_set fail the whole statement,
# so no run could ever be claimed again: it is leased by its columns alone
# (CASE evaluates only the branch it takes) and reported after the batch.
_CLAIM = """
UPDATE runs SET
    lease_owner = ?1,
    lease_expires_at = ?2,
    revision = revision + 1,
    doc = CASE WHEN json_valid(doc) THEN json_set(
        doc,
        '$.lease', json(?3),
        '$.revision', revision + 1,
        '$.recoveries', ifnull(json_extract(doc, '$.recoveries'), 0)
            + (lease_owner IS NOT NULL AND status = 'running'))
        ELSE doc END
WHERE id IN (
    SELECT id FROM runs INDEXED BY runs_claimable
    WHERE {claimable} AND next_run_at IS NOT NULL AND {plain} AND next_run_at <= ?4
      AND (lease_expires_at IS NULL OR lease_expires_at <= ?4)
      AND {workflow} IN (SELECT value FROM json_each(?5)){tenant}
    ORDER BY priority DESC, next_run_at ASC, id ASC
    LIMIT ?6)
RETURNING id, doc
"""
# With versions, ?5 lists "name<US>version" pairs (US = the unit separator,
# which neither names nor versions contain in practice). A document that is
# not JSON has no version to read, so no versioned claim selects it.
_BY_NAME = "workflow_id"
_BY_VERSION = (
    "workflow_id || char(31) || "
    "CASE WHEN json_valid(doc) THEN json_extract(doc, '$.workflow_version') END"
)
_CLAIMS = {
    (versioned, tenant): _CLAIM.format(
        claimable=CLAIMABLE_SQL,
        plain=PLAIN_SQL,
        workflow=_BY_VERSION if versioned else _BY_NAME,
        tenant=" AND tenant_id = ?7" if tenant else "",
    )
    for versioned in (False, True)
    for tenant in (False, True)
}
_HEARTBEAT = (
    "UPDATE runs SET lease_expires_at = ?, doc = json_set(doc, '$.lease.expires_at', ?) "
    "WHERE id = ? AND lease_owner = ? RETURNING status"
)


def _workflow_keys(workflows: WorkflowFilter) -> list[str]:
    if isinstance(workflows, Mapping):
        return [
            f"{name}\x1f{version}" for name, versions in workflows.items() for version in versions
        ]
    return list(workflows)


def _corrupt_json(run_id: str | None) -> DataCorruptionError:
    return DataCorruptionError(f"stored run {run_id!r} is not a valid JSON document", run_id=run_id)


def _load_leased(row: tuple[str, str]) -> WorkflowRun:
    """A claimed row's run; a corrupt document's error names the run even without an id."""
    run_id, doc = row
    try:
        return load_run(doc)
    except DataCorruptionError as exc:
        if exc.run_id is not None:
            raise
        raise DataCorruptionError(f"stored run {run_id!r}: {exc.message}", run_id=run_id) from None


def _open_writer(path: str, *, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
    conn = connect(path, synchronous=synchronous, busy_timeout=busy_timeout, writer=True)
    try:
        ensure_schema(conn, path)
        # The worker waits for other processes' locks itself, on its own
        # thread only (see _worker): the connection must fail fast.
        conn.execute("PRAGMA busy_timeout = 0")
    except BaseException:
        conn.close()
        raise
    return conn


def _stop_workers(*workers: Worker) -> None:
    for worker in workers:
        worker.stop_nowait()


class SQLiteStore:
    """A durable Store in one SQLite file, safe for many processes on one host.

    Opening is lazy: the constructor only checks its arguments, and the file
    is opened (and, unless ``create=False``, created with its parent
    directories and its schema) by the first operation or by :meth:`open`.
    So building an engine touches no file until it reads or writes a run.
    An existing file's schema version is checked when it is opened.

    Args:
        path: Database file, or ``":memory:"`` for a private in-memory database.
        synchronous: ``PRAGMA synchronous``: ``"FULL"`` (default: an
            acknowledged write survives power loss), ``"NORMAL"`` (survives a
            process crash; may lose the last commits on power loss),
            ``"EXTRA"`` or ``"OFF"``.
        busy_timeout: Seconds a write waits for another process's lock before
            failing with ``StoreUnavailableError``.
        commit_on_loop: Commit a loop iteration's writes on the event loop's
            own thread while the writer thread is idle (the default, and the
            fastest: see "Group commit" above). ``False`` hands every batch
            to the writer thread, so the loop never waits for an fsync — for
            a database on storage whose fsync takes milliseconds, under a
            loop that must answer in less.
        create: Create the file (and its parent directories) if it does not
            exist (the default). ``False`` opens an existing database only:
            a missing file raises ``StoreUnavailableError("no database at
            PATH")`` instead of silently starting an empty one.
        read_only: Open an existing database for reading only (implies
            ``create=False``): no writer thread, nothing written, not even
            the WAL mode; every write raises ``StoreUnavailableError``. A
            file in a directory nobody may write (a read-only mount) is
            opened ``immutable``, since SQLite could not create its
            shared-memory file there.

    Raises:
        ValueError: An unknown ``synchronous`` mode or a negative timeout.
        StoreUnavailableError: (when opened) There is no database at the path
            and ``create`` is false; the file or its directory cannot be
            created, opened or written (the message names the path and the
            cause); it is locked past the timeout, or was written by a newer
            schema version; or the linked SQLite is older than 3.35.
        DataCorruptionError: (when opened) The file is not a SQLite database
            or is damaged.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        commit_on_loop: bool = True,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        self._path = os.fspath(path)
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}, not {synchronous!r}"
            )
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must be >= 0, not {busy_timeout!r}")
        # "" is SQLite's private temporary database: per connection, like :memory:.
        self._shared = self._path in (":memory:", "")
        if read_only and self._shared:
            raise ValueError("a private in-memory SQLite database cannot be opened read-only")
        self._read_only = read_only
        self._create = create and not read_only
        self._opened = False
        self._closed = False
        self._file: FileIdentity | None = None
        self._open_lock = threading.Lock()
        self._pid = os.getpid()
        # The workers must not reference the store (partial, not bound
        # methods): the finalizer below holds them, and would keep it alive.
        # Their threads start (and connect) in open().
        self._writer_worker = Worker(
            "streamline-sqlite-writer",
            functools.partial(
                _open_writer, self._path, synchronous=mode, busy_timeout=busy_timeout
            ),
            transactional=True,
            busy_timeout=busy_timeout,
            commit_on_loop=commit_on_loop,
        )
        if self._shared:
            self._reader_worker = self._writer_worker
        else:
            self._reader_worker = Worker(
                "streamline-sqlite-reader",
                functools.partial(
                    connect,
                    self._path,
                    synchronous=mode,
                    busy_timeout=busy_timeout,
                    writer=False,
                    read_only=read_only,
                ),
                transactional=False,
            )
        # An unclosed store still ends its threads once garbage-collected.
        self._finalizer = weakref.finalize(
            self, _stop_workers, self._writer_worker, self._reader_worker
        )

    @property
    def path(self) -> str:
        """The database path this store opened."""
        return self._path

    @property
    def read_only(self) -> bool:
        """Whether this store was opened read-only."""
        return self._read_only

    def __repr__(self) -> str:
        return f"SQLiteStore({self._path!r}{', read_only=True' if self._read_only else ''})"

    def open(self) -> None:
        """Open the database now (idempotent); otherwise the first operation opens it.

        Blocks while the connections open (and, for a new file, while the
        schema is created).

        Raises:
            StoreUnavailableError: No database at the path (``create=False``
                or ``read_only``), the path cannot be created or opened (the
                message names the path and the cause), the store is closed,
                or see the class.
            DataCorruptionError: The file is not a SQLite database.
        """
        with self._open_lock:
            if self._closed:
                raise StoreUnavailableError("SQLiteStore is closed")
            if self._opened:
                return
            if os.getpid() != self._pid:
                raise StoreUnavailableError(
                    "this SQLiteStore was made in another process; make a new one after fork"
                )
            check_sqlite_version()
            if not self._shared:
                prepare_path(self._path, create=self._create)
            workers = [self._reader_worker] if self._read_only else [self._writer_worker]
            if not self._shared and not self._read_only:
                workers.append(self._reader_worker)
            started: list[Worker] = []
            try:
                for worker in workers:
                    worker.start()
                    started.append(worker)
            except WorkflowError as exc:
                for worker in started:
                    worker.stop_nowait()
                    worker.thread.join()
                raise explain_open_failure(exc, self._path, read_only=self._read_only) from None
            if not self._shared:
                self._file = FileIdentity(self._path)
            self._opened = True

    @property
    def _writer(self) -> Worker:
        if self._read_only:
            raise StoreUnavailableError(
                f"SQLite database {self._path} is open read-only; it cannot be changed"
            )
        if not self._opened or self._closed:
            self.open()  # takes a lock: only until the store is open
        if self._file is not None:
            self._file.check()
        return self._writer_worker

    @property
    def _reader(self) -> Worker:
        if not self._opened or self._closed:
            self.open()
        return self._reader_worker

    # Writes: each is one job on the writer thread, run inside a group-commit transaction.

    async def create(
        self, run: WorkflowRun, *, write_id: str | None = None
    ) -> tuple[WorkflowRun, bool]:
        """Insert ``run``, or return the active run holding its idempotency key.

        Returns:
            ``(run as stored, True)``, or ``(existing active run, False)`` when
            an active run of the same workflow and tenant has the key.

        Raises:
            ConflictError: A run with this id exists (and is not this
                ``write_id``'s own create, repeated).
        """
        text = encode_run(run)
        stored = load_run(text)  # as a later read will see it
        row = (stored.id, *columns(stored), with_write_id(text, write_id))
        key = stored.idempotency_key
        by_key = (
            stored.workflow_id,
            stored.tenant_id is None,
            stored.tenant_id or "",
            key,
        )

        def op(conn: sqlite3.Connection) -> tuple[WorkflowRun, bool]:
            # Inside BEGIN IMMEDIATE no other connection can insert between
            # this check and the insert: the check is the constraint.
            if key is not None:
                found = conn.execute(_ACTIVE_BY_KEY, by_key).fetchone()
                if found is not None:
                    return load_run(found[0]), False
            try:
                conn.execute(_INSERT, row)
            except sqlite3.IntegrityError:
                # The primary key is the only unique constraint; SQLite undid
                # the failed INSERT alone.
                if write_id is not None:
                    found = conn.execute(_SELECT_WRITE_ID, (stored.id,)).fetchone()
                    if found is not None and (found[0], found[1]) == (write_id, stored.revision):
                        return load_run(found[2]), True  # our own create, repeated
                raise ConflictError(f"run {stored.id!r} already exists", run_id=stored.id) from None
            return stored, True

        return await self._writer.run(op)

    async def claim(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: WorkflowFilter,
        tenant_id: str | None = None,
    ) -> list[WorkflowRun]:
        """Lease up to ``limit`` claimable runs to ``worker``.

        Order: priority descending, then ``next_run_at``, then id. Taking
        over an expired lease of a ``running`` run counts a recovery.

        Returns:
            The claimed runs as stored after the claim.
        """
        if limit <= 0 or not workflows:
            return []
        expires = now + timedelta(seconds=lease_for)
        lease = Lease(owner=worker, expires_at=expires).model_dump_json()
        params: tuple[Any, ...] = (
            worker,
            micros(expires),
            lease,
            micros(now),
            json.dumps(_workflow_keys(workflows)),
            limit,
        )
        sql = _CLAIMS[(isinstance(workflows, Mapping), tenant_id is not None)]
        if tenant_id is not None:
            params = (*params, tenant_id)

        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return [(run_id, doc) for run_id, doc in conn.execute(sql, params).fetchall()]

        # A corrupt document stays leased (so no worker spins on it) and is
        # reported after the valid runs of the same claim are kept.
        return leased_runs(await self._writer.run(op), _load_leased)

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

        The contract is :class:`streamline_core.slots.LimitedClaims`; the
        whole claim is one job of the writer, under ``BEGIN IMMEDIATE``
        (see :mod:`streamline_sqlite._limits`).
        """
        if limit <= 0 or not workflows:
            return []
        expires = now + timedelta(seconds=lease_for)
        lease = Lease(owner=worker, expires_at=expires).model_dump_json()
        versioned = isinstance(workflows, Mapping)
        sql = candidates_sql(
            _BY_VERSION if versioned else _BY_NAME, tenant_id is not None, run_id is not None
        )
        params: tuple[Any, ...] = (micros(now), json.dumps(_workflow_keys(workflows)))
        if run_id is not None:
            params = (*params, tenant_id, run_id)  # ?3 unused without a tenant
        elif tenant_id is not None:
            params = (*params, tenant_id)

        def op(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            return claim_limited_rows(
                conn,
                candidates=sql,
                candidate_params=params,
                worker=worker,
                lease_json=lease,
                now=now,
                expires=expires,
                limit=limit,
            )

        return leased_runs(await self._writer.run(op), _load_leased)

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        *,
        write_id: str | None = None,
    ) -> WorkflowRun:
        """Compare-and-set ``patch`` onto the run; the revision goes up by one.

        Args:
            run_id: The run.
            expected_revision: The revision the caller read.
            patch: Dotted paths to new values (``UNSET`` removes a key). Do
                not mutate its values until the call returns.
            owner: When given, the lease must belong to this worker.
            write_id: This write's id, kept in the document (``_write_id``);
                a repeat of the write that produced the stored revision
                returns the run as stored.

        Returns:
            The run as now stored.

        Raises:
            WorkflowNotFoundError: No such run.
            ConflictError: Stale revision, or the lease is not ``owner``'s.
            DataCorruptionError: The patched run would be invalid (nothing
                is written) or the stored one is.
        """
        values = stored_values(patch, run_id)

        def op(conn: sqlite3.Connection) -> WorkflowRun:
            found = conn.execute(_SELECT_FOR_UPDATE, (run_id,)).fetchone()
            if found is None:
                raise WorkflowNotFoundError(f"run {run_id!r} not found", run_id=run_id)
            text, *old = found
            revision, lease_owner = old[_REVISION], old[_LEASE_OWNER]
            if revision != expected_revision:
                if write_id is not None and revision == expected_revision + 1:
                    mine = own_write(text, write_id)
                    if mine is not None:
                        return mine  # our own write, repeated after a lost answer
                raise ConflictError(
                    f"run {run_id!r} is at revision {revision}, not {expected_revision}",
                    run_id=run_id,
                )
            if owner is not None and lease_owner != owner:
                raise ConflictError(f"run {run_id!r} is not leased to {owner!r}", run_id=run_id)
            try:
                doc = pydantic_core.from_json(text)
            except ValueError:
                raise _corrupt_json(run_id) from None
            if not isinstance(doc, dict):
                raise _corrupt_json(run_id)
            apply_patch(doc, values, copy_values=False)  # stored_values built them fresh
            doc["revision"] = expected_revision + 1
            run = run_from_document(doc)  # refuse a patch that would corrupt the run
            new_text = with_write_id(encode_run(run), write_id)
            changed, new = changed_columns(old, run, _touched(values))
            params = (*new, new_text, run_id, expected_revision)
            written = conn.execute(_update_sql(changed), params).rowcount
            if written != 1:  # unreachable under the write lock; the CAS in SQL is the backstop
                raise ConflictError(f"run {run_id!r} changed concurrently", run_id=run_id)
            return run

        return await self._writer.run(op)

    async def heartbeat(
        self, run_id: str, owner: str, now: datetime, lease_for: float
    ) -> RunStatus:
        """Extend ``owner``'s lease to ``now + lease_for``; the revision stays.

        Returns:
            The run's status, so the worker learns of a cancellation.

        Raises:
            LeaseLostError: ``owner`` does not hold the lease, or no such run.
        """
        expires = now + timedelta(seconds=lease_for)
        params = (micros(expires), expires.isoformat(), run_id, owner)

        def op(conn: sqlite3.Connection) -> str | None:
            found = conn.execute(_HEARTBEAT, params).fetchone()
            return None if found is None else str(found[0])

        status = await self._writer.run(op)
        if status is None:
            raise LeaseLostError(f"{owner!r} does not hold run {run_id!r}", run_id=run_id)
        try:
            return RunStatus(status)
        except ValueError:
            raise DataCorruptionError(
                f"stored run {run_id!r} has an unknown status {status!r}", run_id=run_id
            ) from None

    async def delete(self, query: RunQuery) -> int:
        """Delete the runs matching ``query`` (limit and cursor ignored).

        Returns:
            How many runs were deleted.
        """
        clause = where(query)

        def op(conn: sqlite3.Connection) -> int:
            if not clause.python:
                return conn.execute(f"DELETE FROM runs {clause.sql}", clause.params).rowcount
            ids = _matching_ids(conn, clause.sql, clause.params, query)
            conn.execute(
                "DELETE FROM runs WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)
            )
            return len(ids)

        return await self._writer.run(op)

    # Reads: on the reader thread (the writer's for :memory:), one statement each.

    async def get(self, run_id: str) -> WorkflowRun | None:
        """The run with this id, or ``None``."""

        def op(conn: sqlite3.Connection) -> WorkflowRun | None:
            found = conn.execute("SELECT doc FROM runs WHERE id = ?", (run_id,)).fetchone()
            return None if found is None else load_run(found[0])

        return await self._reader.run(op)

    async def find(self, query: RunQuery) -> RunPage:
        """One page of the runs matching ``query``, keyset-paginated.

        Raises:
            ValueError: A malformed cursor, or a limit below 1.
        """
        if query.limit is not None and query.limit < 1:
            raise ValueError(f"limit must be at least 1 (or None), not {query.limit!r}")
        limit = query.limit
        extra, extra_params = after_cursor(query)
        clause = where(query, extra, extra_params)
        sql = f"SELECT doc FROM runs {clause.sql} {order_by(query)}"
        params = clause.params
        if limit is not None and not clause.python:
            sql += " LIMIT ?"
            params = (*params, limit + 1)

        def op(conn: sqlite3.Connection) -> list[WorkflowRun]:
            runs: list[WorkflowRun] = []
            # closing(): stopping early must end the statement, or the read
            # transaction stays open and holds back WAL checkpoints.
            with closing(conn.execute(sql, params)) as rows:
                for (doc,) in rows:
                    run = load_run(doc)
                    if clause.python and not _dicts_match_run(run, query):
                        continue
                    runs.append(run)
                    if limit is not None and len(runs) > limit:
                        break
            return runs

        runs = await self._reader.run(op)
        if limit is None or len(runs) <= limit:
            return RunPage(items=runs)
        page = runs[:limit]
        last = page[-1]
        field, _ = sort_key(query)
        return RunPage(items=page, next_cursor=encode_cursor(getattr(last, field), last.id))

    async def count(self, query: RunQuery) -> int:
        """How many runs match ``query`` (limit and cursor ignored)."""
        clause = where(query)

        def op(conn: sqlite3.Connection) -> int:
            if not clause.python:
                found = conn.execute(f"SELECT count(*) FROM runs {clause.sql}", clause.params)
                return int(found.fetchone()[0])
            return len(_matching_ids(conn, clause.sql, clause.params, query))

        return await self._reader.run(op)

    async def close(self) -> None:
        """Finish queued work, close the connections and end both threads. Idempotent."""
        with self._open_lock:
            self._closed = True
        await self._writer_worker.stop()
        if self._reader_worker is not self._writer_worker:
            await self._reader_worker.stop()
        self._finalizer.detach()


def _touched(patch: Mapping[str, Any]) -> set[str]:
    """The top-level run fields ``patch`` writes (and ``revision``, which every write bumps)."""
    return {path.partition(".")[0] for path in patch} | {"revision"}


def _dicts_match_run(run: WorkflowRun, query: RunQuery) -> bool:
    """``meta``/``context`` filters of ``query`` against a loaded run."""
    for data, filt in ((run.meta, query.meta), (run.context, query.context)):
        if filt:
            for key, value in filt.items():
                if key not in data or not json_equal(data[key], value):
                    return False
    return True


def _matching_ids(
    conn: sqlite3.Connection, where_sql: str, params: tuple[Any, ...], query: RunQuery
) -> list[str]:
    # Decodes only the two small JSON objects the filters need, not whole runs.
    sql = (
        "SELECT id, json_extract(doc, '$.meta'), json_extract(doc, '$.context') "
        f"FROM runs {where_sql}"
    )
    ids: list[str] = []
    with closing(conn.execute(sql, params)) as rows:
        for run_id, meta, context in rows:
            try:
                if dicts_match(meta, context, query):
                    ids.append(run_id)
            except ValueError:
                raise _corrupt_json(run_id) from None
    return ids
