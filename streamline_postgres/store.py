"""``PostgresStore``: the Store contract on one PostgreSQL table, through psycopg 3.

Every operation is one SQL statement on a pooled autocommit connection
(schema migration aside), so every write is one atomic, durable server
transaction and nothing holds a lock across a round trip:

* ``claim`` is one ``WITH picked AS (SELECT … FOR UPDATE SKIP LOCKED)
  UPDATE … RETURNING``: the CTE picks claimable rows in claim order and
  skips rows another claim has locked, and because ``FOR UPDATE`` re-checks
  a row that changed since the statement's snapshot, the lease is a
  conditional write repeating the claimable conditions on the row's latest
  version. Concurrent claimers never wait on each other and never take one
  run twice.
* ``transition`` is one ``UPDATE … WHERE id AND revision [AND lease_owner]
  RETURNING``: the server applies the patch with ``jsonb_set`` (no prior
  read: the document is never round-tripped through Python), after the
  patch's values were validated against the run model here. Only when it
  matches nothing does a follow-up read say why.
* ``create`` is one ``INSERT``; a keyed create is one statement that looks
  the key's active holder up and inserts only without one, ``ON CONFLICT``
  the partial unique index of held keys.
* ``heartbeat`` moves ``lease.expires_at`` only.

Lost answers: each create and transition writes a fresh ``write_id`` into
its row. When the connection drops after the statement was sent, the store
reads the row back: our ``write_id`` (at the expected revision + 1) means
the write committed, and its result is returned instead of an error; when
even that read fails, the id is remembered and recognised on the caller's
retry of the same write (same run, revision and owner).

Time: due times are compared with the ``now`` a claim is given. Lease
expiry is judged by the server's clock (``now()``) unless the store was
built with ``lease_clock="caller"`` (or an engine on a fake clock switched
it): then by that ``now`` too. Expiry instants are written from the
engine's ``now`` (claims, heartbeats and commits alike).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from streamline_core.claiming import leased_runs
from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    LeaseLostError,
    StoreError,
    StoreUnavailableError,
    WorkflowNotFoundError,
)
from streamline_core.run import Lease, RunPage, RunStatus, WorkflowRun, encode_cursor
from streamline_core.store import RunQuery, WorkflowFilter, sort_key

from ._codec import check_patch, encode_run, load_run, patch_sql
from ._errors import is_ambiguous, translated
from ._limits import LimitedSQL, claim_limited_rows
from ._query import after_cursor, order_by, where
from ._schema import (
    ACTIVE,
    SCHEMA_VERSION,
    VERSION_TABLE,
    channel_for,
    check_table_name,
    migrations,
    quote,
)

__all__ = ["PostgresStore"]

Pool = AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]]
_ACTIVE_SQL = "status IN ('draft', 'running', 'waiting')"
_KEYED_RETRIES = 5


def _write_id() -> str:
    return uuid.uuid4().hex


def _load_leased(row: tuple[str, str]) -> WorkflowRun:
    run_id, doc = row
    try:
        return load_run(doc)
    except DataCorruptionError as exc:
        if exc.run_id is not None:
            raise
        raise DataCorruptionError(f"stored run {run_id!r}: {exc.message}", run_id=run_id) from None


class PostgresStore:
    """A Store on one PostgreSQL table (``workflow_runs`` by default).

    Opening is lazy: the first operation opens the pool (when the store owns
    it) and creates or migrates the table.

    Args:
        dsn_or_pool: A libpq connection string or URL (the store then owns a
            ``psycopg_pool.AsyncConnectionPool`` of autocommit connections
            and closes it in :meth:`close`), or a pool of your own (opened
            and closed by you; its connections may be autocommit or not).
        table: The runs table (a plain identifier); several stores with
            different tables may share one database.
        min_size: Connections the owned pool keeps open.
        max_size: Most connections the owned pool opens.
        timeout: Seconds to wait for a connection (and for the first one to
            open) before ``StoreUnavailableError``.
        lease_clock: ``"server"`` (the default): a claim judges whether a
            lease expired by the server's clock (``now()``), so a worker whose
            clock runs ahead never takes a live lease over early. ``"caller"``:
            by the ``now`` the engine passes. An engine on a clock that moves
            only when told (``FakeClock``) switches its store to ``"caller"``
            (:meth:`use_caller_clock`).

    Raises:
        ValueError: ``table`` is not a plain identifier.
    """

    def __init__(
        self,
        dsn_or_pool: str | Pool,
        table: str = "workflow_runs",
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
        lease_clock: Literal["server", "caller"] = "server",
    ) -> None:
        if lease_clock not in ("server", "caller"):
            raise ValueError(f"lease_clock must be 'server' or 'caller', not {lease_clock!r}")
        self._server_clock = lease_clock == "server"
        self._table = check_table_name(table)
        self._t = quote(table)
        self._channel = channel_for(table)
        self._dsn = dsn_or_pool if isinstance(dsn_or_pool, str) else None
        self._pool: Pool | None = None if isinstance(dsn_or_pool, str) else dsn_or_pool
        self._owns_pool = isinstance(dsn_or_pool, str)
        self._sizes = (min_size, max_size)
        self._timeout = timeout
        self._ready = False
        self._closed = False
        self._open_lock: asyncio.Lock | None = None
        self._due: asyncio.Event | None = None
        self._listener: asyncio.Task[None] | None = None
        # (run_id, expected_revision, owner) -> write id of a write whose answer was lost.
        self._lost: dict[tuple[str, int, str | None], str] = {}
        self._lost_creates: dict[str, str] = {}
        self._build_sql()

    @property
    def table(self) -> str:
        """The runs table's name."""
        return self._table

    @property
    def channel(self) -> str:
        """The ``LISTEN`` channel notified when a run becomes claimable and due."""
        return self._channel

    def __repr__(self) -> str:
        return f"PostgresStore(table={self._table!r})"

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

    def _build_sql(self) -> None:
        t = self._t
        self._get_sql = f"SELECT doc::text FROM {t} WHERE id = %s"
        self._why_sql = f"SELECT revision, lease_owner, write_id, doc::text FROM {t} WHERE id = %s"
        self._insert_sql = (
            f"INSERT INTO {t} (id, doc, write_id, key_hold) VALUES (%s, %s::jsonb, %s, %s) "
            "RETURNING doc::text"
        )
        self._keyed_sql = f"""
WITH holder AS (
    SELECT doc::text AS doc FROM {t}
    WHERE workflow_id = %(wf)s AND (tenant_id IS NULL) = %(no_tenant)s
      AND coalesce(tenant_id, '') = %(tenant)s AND idempotency_key = %(key)s AND {_ACTIVE_SQL}
    LIMIT 1),
inserted AS (
    INSERT INTO {t} (id, doc, write_id, key_hold)
    SELECT %(id)s, %(doc)s::jsonb, %(write_id)s, %(hold)s WHERE NOT EXISTS (SELECT 1 FROM holder)
    ON CONFLICT (workflow_id, (tenant_id IS NULL), (coalesce(tenant_id, '')), key_hold)
        WHERE key_hold IS NOT NULL DO NOTHING
    RETURNING doc::text AS doc)
SELECT true, doc FROM inserted UNION ALL SELECT false, doc FROM holder"""
        self._heartbeat_sql = (
            f"UPDATE {t} SET doc = jsonb_set(doc, '{{lease,expires_at}}', to_jsonb(%s::text)) "
            "WHERE id = %s AND lease_owner = %s RETURNING status"
        )
        # By the server's clock: now() + lease_for, written as the ISO text the
        # run model reads (UTC, microseconds).
        self._heartbeat_server_sql = (
            f"UPDATE {t} SET doc = jsonb_set(doc, '{{lease,expires_at}}', to_jsonb(to_char("
            "(now() + make_interval(secs => %s)) AT TIME ZONE 'UTC', "
            '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\'))) '
            "WHERE id = %s AND lease_owner = %s RETURNING status"
        )
        claim = f"""
WITH picked AS (
    SELECT id FROM {t}
    WHERE {_ACTIVE_SQL} AND NOT paused AND next_run_at IS NOT NULL AND next_run_at <= %(now)s
      AND (lease_expires_at IS NULL OR lease_expires_at <= {{expired_by}})
      AND {{workflow}}{{tenant}}
      AND concurrency_key IS NULL AND rate_key IS NULL
    ORDER BY priority DESC, next_run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
UPDATE {t} r SET write_id = NULL, doc = jsonb_set(jsonb_set(jsonb_set(
        r.doc, '{{{{lease}}}}', %(lease)s::jsonb),
        '{{{{revision}}}}', to_jsonb(r.revision + 1)),
        '{{{{recoveries}}}}', to_jsonb(
            CASE WHEN jsonb_typeof(r.doc->'recoveries') = 'number'
                 THEN (r.doc->>'recoveries')::numeric ELSE 0 END
            -- a lease still on a claimable run is an expired one (is_takeover)
            + CASE WHEN r.lease_owner IS NOT NULL AND r.status = 'running' THEN 1 ELSE 0 END))
FROM picked WHERE r.id = picked.id
RETURNING r.id, r.doc::text"""
        by_name = "workflow_id = ANY(%(names)s::text[])"
        by_version = (
            "(workflow_id, workflow_version) IN "
            "(SELECT * FROM unnest(%(names)s::text[], %(versions)s::text[]))"
        )
        self._limited = LimitedSQL(t, self._table)
        self._limited_sql = {
            (versioned, tenant, one): self._limited.candidates.format(
                workflow=by_version if versioned else by_name,
                tenant=" AND tenant_id = %(tenant)s" if tenant else "",
                one=" AND id = %(run_id)s" if one else "",
            )
            for versioned in (False, True)
            for tenant in (False, True)
            for one in (False, True)
        }
        # Lease expiry by the server's clock (now(): this statement's start)
        # or by the caller's now; due times always by the caller's.
        self._claim_sql = {
            (versioned, tenant, server): claim.format(
                workflow=by_version if versioned else by_name,
                tenant=" AND tenant_id = %(tenant)s" if tenant else "",
                expired_by="now()" if server else "%(now)s",
            )
            for versioned in (False, True)
            for tenant in (False, True)
            for server in (False, True)
        }

    # Connections and schema.

    async def _get_pool(self) -> Pool:
        if self._closed:
            raise StoreUnavailableError("PostgresStore is closed")
        if self._ready and self._pool is not None:
            return self._pool
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._ready and self._pool is not None:
                return self._pool
            with translated("connect"):
                if self._pool is None:
                    assert self._dsn is not None
                    pool: Pool = AsyncConnectionPool(
                        self._dsn,
                        min_size=self._sizes[0],
                        max_size=self._sizes[1],
                        timeout=self._timeout,
                        kwargs={"autocommit": True},
                        open=False,
                    )
                    try:
                        await pool.open(wait=True, timeout=self._timeout)
                    except BaseException:
                        await pool.close()
                        raise
                    self._pool = pool
                await self._migrate(self._pool)
            self._ready = True
            return self._pool

    async def _migrate(self, pool: Pool) -> None:
        async with pool.connection() as conn, conn.transaction():
            # One migrator at a time across every process on this database.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('streamline_schema'))")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
                "(table_name text PRIMARY KEY, version integer NOT NULL)"
            )
            cur = await conn.execute(
                f"SELECT version FROM {VERSION_TABLE} WHERE table_name = %s", (self._table,)
            )
            found = await cur.fetchone()
            current = 0 if found is None else int(found[0])
            if current > SCHEMA_VERSION:
                raise StoreUnavailableError(
                    f"table {self._table!r} is at schema version {current}, newer than this "
                    f"streamline_postgres knows ({SCHEMA_VERSION}): upgrade streamline"
                )
            for version, statements in migrations(self._table, current):
                for statement in statements:
                    await conn.execute(statement.encode())
                await conn.execute(
                    f"INSERT INTO {VERSION_TABLE} (table_name, version) VALUES (%s, %s) "
                    "ON CONFLICT (table_name) DO UPDATE SET version = EXCLUDED.version",
                    (self._table, version),
                )

    async def _fetchone(self, what: str, run_id: str | None, sql: str, params: Any) -> Any:
        pool = await self._get_pool()
        with translated(what, run_id):
            async with pool.connection() as conn:
                cur = await conn.execute(sql, params)
                return await cur.fetchone()

    async def _fetchall(self, what: str, sql: str, params: Any) -> list[Any]:
        pool = await self._get_pool()
        with translated(what):
            async with pool.connection() as conn:
                cur = await conn.execute(sql, params)
                return await cur.fetchall()

    # Writes.

    async def create(
        self, run: WorkflowRun, *, write_id: str | None = None
    ) -> tuple[WorkflowRun, bool]:
        """Insert ``run``, or return the active run holding its idempotency key.

        ``write_id`` (a fresh one when ``None``) is stored in the row: a
        repeat of this create finds it and returns ``(stored, True)``.

        Returns:
            ``(run as stored, True)``, or ``(existing active run, False)``.

        Raises:
            ConflictError: A run with this id exists.
            ValidationError: The server refused a value (a NUL character, ...).
            DataCorruptionError: A value cannot be stored as JSON.
        """
        text = encode_run(run)
        write_id = write_id or self._lost_creates.get(run.id) or _write_id()
        key = run.idempotency_key
        hold = key if key is not None and run.status.value in ACTIVE else None
        try:
            if key is None:
                row = await self._fetchone(
                    "create a run", run.id, self._insert_sql, (run.id, text, write_id, None)
                )
                self._lost_creates.pop(run.id, None)
                return load_run(row[0]), True
            params = {
                "wf": run.workflow_id,
                "no_tenant": run.tenant_id is None,
                "tenant": run.tenant_id or "",
                "key": key,
                "id": run.id,
                "doc": text,
                "write_id": write_id,
                "hold": hold,
            }
            for _ in range(_KEYED_RETRIES):
                rows = await self._fetchall("create a run", self._keyed_sql, params)
                if rows:
                    created, doc = rows[0]
                    self._lost_creates.pop(run.id, None)
                    return load_run(doc), bool(created)
                # The holder committed after this statement's snapshot was
                # taken (ON CONFLICT waited for it): the next statement sees it.
            raise StoreUnavailableError(
                f"create of run {run.id!r} kept racing other creates of its key", run_id=run.id
            )
        except ConflictError:
            mine = await self._own_write(run.id, write_id)
            if mine is not None:
                self._lost_creates.pop(run.id, None)
                return mine, True
            raise ConflictError(f"run {run.id!r} already exists", run_id=run.id) from None
        except StoreUnavailableError as exc:
            if not is_ambiguous(exc):
                raise
            mine = await self._own_write(run.id, write_id, remember=True)
            if mine is None:
                raise
            return mine, True

    async def _own_write(
        self, run_id: str, write_id: str, *, remember: bool = False
    ) -> WorkflowRun | None:
        """The run, if the row carries ``write_id`` (our create did commit)."""
        try:
            row = await self._fetchone("read a run back", run_id, self._why_sql, (run_id,))
        except StoreError:
            row = None
            if remember:
                self._lost_creates[run_id] = write_id
        if row is not None and row[2] == write_id:
            self._lost_creates.pop(run_id, None)
            return load_run(row[3])
        return None

    async def claim(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: WorkflowFilter,
        tenant_id: str | None = None,
    ) -> list[WorkflowRun]:
        """Lease up to ``limit`` claimable runs to ``worker``, in claim order.

        Raises:
            DataCorruptionError: A leased document is not a valid run (it
                stays leased); the valid runs of the batch are in ``claimed``.
        """
        if limit <= 0 or not workflows:
            return []
        lease = Lease(owner=worker, expires_at=now + timedelta(seconds=lease_for))
        params: dict[str, Any] = {
            "now": now,
            "limit": limit,
            "lease": lease.model_dump_json(),
            "tenant": tenant_id,
        }
        versioned = isinstance(workflows, Mapping)
        if isinstance(workflows, Mapping):
            pairs = [(name, v) for name, versions in workflows.items() for v in versions]
            params["names"] = [name for name, _ in pairs]
            params["versions"] = [v for _, v in pairs]
        else:
            params["names"] = list(workflows)
        sql = self._claim_sql[(versioned, tenant_id is not None, self._server_clock)]
        rows = await self._fetchall("claim runs", sql, params)
        return leased_runs([(r[0], r[1]) for r in rows], _load_leased)

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

        The contract is :class:`streamline_core.slots.LimitedClaims`; how it
        is made strict here is in :mod:`streamline_postgres._limits`.
        """
        if limit <= 0 or not workflows:
            return []
        lease = Lease(owner=worker, expires_at=now + timedelta(seconds=lease_for))
        params: dict[str, Any] = {
            "now": now,
            "lease": lease.model_dump_json(),
            "tenant": tenant_id,
            "run_id": run_id,
        }
        versioned = isinstance(workflows, Mapping)
        if isinstance(workflows, Mapping):
            pairs = [(name, v) for name, versions in workflows.items() for v in versions]
            params["names"] = [name for name, _ in pairs]
            params["versions"] = [v for _, v in pairs]
        else:
            params["names"] = list(workflows)
        sql = self._limited_sql[(versioned, tenant_id is not None, run_id is not None)]
        pool = await self._get_pool()
        with translated("claim limited runs"):
            async with pool.connection() as conn, conn.transaction():
                rows = await claim_limited_rows(conn, self._limited, sql, params, limit)
        return leased_runs(rows, _load_leased)

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        *,
        write_id: str | None = None,
    ) -> WorkflowRun:
        """Compare-and-set ``patch`` onto the run in one conditional UPDATE.

        ``write_id`` (else the id remembered from a lost answer, else a fresh
        one) is stored in the row: a repeat of an applied write returns the
        run as stored.

        Raises:
            WorkflowNotFoundError: No such run.
            ConflictError: Stale revision, or the lease is not ``owner``'s.
            DataCorruptionError: The patch would leave an invalid run (nothing
                is written), or the stored run is invalid.
            ValidationError: The server refused a value.
        """
        check_patch(patch, run_id)
        key = (run_id, expected_revision, owner)
        write_id = write_id or self._lost.get(key) or _write_id()
        built = patch_sql(patch, expected_revision + 1, run_id)
        # A run that ends, or changes its key, gives up its hold on the key
        # for good: a later create may take it, and reviving the run later
        # cannot collide with the new holder.
        status = patch.get("status")
        releases = "idempotency_key" in patch or (
            "status" in patch and (status is None or str(status) not in ACTIVE)
        )
        sql = (
            f"UPDATE {self._t} SET doc = {built.doc}, write_id = %s"
            f"{', key_hold = NULL' if releases else ''} "
            f"WHERE id = %s AND revision = %s{' AND lease_owner = %s' if owner is not None else ''}"
            f"{built.guards} RETURNING doc::text"
        )
        params: list[Any] = [*built.doc_params, write_id, run_id, expected_revision]
        if owner is not None:
            params.append(owner)
        params.extend(built.guard_params)
        try:
            row = await self._fetchone("update a run", run_id, sql, params)
        except StoreUnavailableError as exc:
            if not is_ambiguous(exc):
                raise
            self._lost[key] = write_id
            try:
                row = await self._fetchone("read a run back", run_id, self._why_sql, (run_id,))
            except StoreError:
                raise exc from None
            if row is None or row[2] != write_id or row[0] != expected_revision + 1:
                raise
            self._lost.pop(key, None)
            return load_run(row[3])
        if row is not None:
            self._lost.pop(key, None)
            return load_run(row[0])
        found = await self._fetchone("read a run", run_id, self._why_sql, (run_id,))
        if found is None:
            raise WorkflowNotFoundError(f"run {run_id!r} not found", run_id=run_id)
        revision, lease_owner, stored_write, doc = found
        if revision == expected_revision + 1 and stored_write == write_id:
            self._lost.pop(key, None)  # our earlier attempt, whose answer was lost, committed
            return load_run(doc)
        if revision != expected_revision:
            raise ConflictError(
                f"run {run_id!r} is at revision {revision}, not {expected_revision}",
                run_id=run_id,
            )
        if owner is not None and lease_owner != owner:
            raise ConflictError(f"run {run_id!r} is not leased to {owner!r}", run_id=run_id)
        raise DataCorruptionError(
            f"run {run_id!r}: a patch path lies under a missing field or list element "
            f"({', '.join(patch)})",
            run_id=run_id,
        )

    async def heartbeat(
        self, run_id: str, owner: str, now: datetime, lease_for: float
    ) -> RunStatus:
        """Extend ``owner``'s lease to ``now + lease_for``; the revision stays.

        With ``lease_clock="server"`` the expiry is the server's ``now()`` plus
        ``lease_for``: the clock claims judge it by.

        Raises:
            LeaseLostError: ``owner`` does not hold the lease, or no such run.
        """
        params: tuple[Any, ...]
        if self._server_clock:
            # Renewed by the clock claims judge it by: it lasts lease_for
            # whatever this worker's clock says.
            sql, params = self._heartbeat_server_sql, (float(lease_for), run_id, owner)
        else:
            expires = (now + timedelta(seconds=lease_for)).isoformat()
            sql, params = self._heartbeat_sql, (expires, run_id, owner)
        row = await self._fetchone("renew a lease", run_id, sql, params)
        if row is None:
            raise LeaseLostError(f"{owner!r} does not hold run {run_id!r}", run_id=run_id)
        try:
            return RunStatus(row[0])
        except ValueError:
            raise DataCorruptionError(
                f"stored run {run_id!r} has an unknown status {row[0]!r}", run_id=run_id
            ) from None

    async def delete(self, query: RunQuery) -> int:
        """Delete the runs matching ``query`` (limit and cursor ignored); returns how many."""
        clause, params = where(query)
        pool = await self._get_pool()
        with translated("delete runs"):
            async with pool.connection() as conn:
                cur = await conn.execute(f"DELETE FROM {self._t} {clause}", params)
                return max(cur.rowcount, 0)

    # Reads.

    async def get(self, run_id: str) -> WorkflowRun | None:
        """The run with this id, or ``None``."""
        row = await self._fetchone("read a run", run_id, self._get_sql, (run_id,))
        return None if row is None else load_run(row[0])

    async def find(self, query: RunQuery) -> RunPage:
        """One page of the runs matching ``query``, keyset-paginated.

        Raises:
            ValueError: A malformed cursor, or a limit below 1.
        """
        if query.limit is not None and query.limit < 1:
            raise ValueError(f"limit must be at least 1 (or None), not {query.limit!r}")
        extra, extra_params = after_cursor(query)
        clause, params = where(query, extra, extra_params)
        sql = f"SELECT doc::text FROM {self._t} {clause} {order_by(query)}"
        if query.limit is not None:
            sql += " LIMIT %s"
            params.append(query.limit + 1)
        rows = await self._fetchall("find runs", sql, params)
        runs = [load_run(row[0]) for row in rows]
        if query.limit is None or len(runs) <= query.limit:
            return RunPage(items=runs)
        page = runs[: query.limit]
        last = page[-1]
        field, _ = sort_key(query)
        return RunPage(items=page, next_cursor=encode_cursor(getattr(last, field), last.id))

    async def count(self, query: RunQuery) -> int:
        """How many runs match ``query`` (limit and cursor ignored)."""
        clause, params = where(query)
        row = await self._fetchone(
            "count runs", None, f"SELECT count(*) FROM {self._t} {clause}", params
        )
        return int(row[0])

    async def wait_for_work(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a run to become claimable and due.

        The optional Store operation an idle worker awaits beside its poll
        delay. A task of the store ``LISTEN``s on :attr:`channel` on a
        connection of its own (opened on first use, reopened after a failure);
        a trigger on the table notifies it when a write (create, resume, event,
        a step releasing its run) leaves a run unleased, unpaused and due by
        the server's clock. A hint only: a caller still claims with its own
        ``now`` and keeps polling as the fallback. Safe to cancel.

        Returns:
            Whether a notification arrived (``False`` on timeout).
        """
        await self._get_pool()
        if self._dsn is None:
            raise StoreUnavailableError(
                "wait_for_work needs a store built from a connection string"
            )
        due = self._start_listening()
        if not due.is_set():
            try:
                await asyncio.wait_for(due.wait(), timeout)
            except TimeoutError:
                return False
        due.clear()
        return True

    async def wait_for_due(self, timeout: float) -> bool:
        """The same as :meth:`wait_for_work` (its earlier name)."""
        return await self.wait_for_work(timeout)

    def _start_listening(self) -> asyncio.Event:
        if self._due is None:
            self._due = asyncio.Event()
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(
                self._listen(self._due), name=f"streamline-postgres-listen:{self._table}"
            )
        return self._due

    async def _listen(self, due: asyncio.Event) -> None:
        assert self._dsn is not None
        backoff = 0.1
        listen = f"LISTEN {quote(self._channel)}".encode()
        while not self._closed:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    await conn.execute(listen)
                    backoff = 0.1
                    async for _ in conn.notifies():
                        due.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # the server went away: polling covers the gap until we are back
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def close(self) -> None:
        """Close the pool this store owns (a pool passed in stays open). Idempotent."""
        self._closed = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None and self._owns_pool:
            with translated("close"):
                await pool.close()
