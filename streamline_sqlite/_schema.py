"""Table layout, indexes, connection settings and schema versioning.

The run is stored whole as JSON text in ``doc`` (the source of truth the
store returns), and every field a query or a claim filters on is copied into
an indexed column. Datetimes in columns are integer microseconds since the
Unix epoch, so they sort and compare exactly; the JSON keeps ISO strings.

The schema version lives in ``PRAGMA user_version``. ``_MIGRATIONS[v]`` takes
a database from version ``v`` to ``v + 1``; version 0 is an empty file. A
database written by a newer release is refused rather than misread.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from streamline_core.errors import DataCorruptionError, StoreUnavailableError, WorkflowError

__all__ = [
    "SCHEMA_VERSION",
    "SYNCHRONOUS_MODES",
    "check_sqlite_version",
    "connect",
    "ensure_schema",
    "explain_open_failure",
    "prepare_path",
]

SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})

# The claim query must repeat these two conditions verbatim: SQLite uses a
# partial index only when the query's WHERE visibly implies the index's WHERE.
ACTIVE_SQL = "status IN ('draft', 'running', 'waiting')"
CLAIMABLE_SQL = f"{ACTIVE_SQL} AND paused = 0"

_V1 = (
    """
    CREATE TABLE runs (
        id               TEXT PRIMARY KEY NOT NULL,
        workflow_id      TEXT NOT NULL,
        tenant_id        TEXT,
        status           TEXT NOT NULL,
        paused           INTEGER NOT NULL,
        next_run_at      INTEGER,
        priority         INTEGER NOT NULL,
        lease_owner      TEXT,
        lease_expires_at INTEGER,
        revision         INTEGER NOT NULL,
        idempotency_key  TEXT,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        ended_at         INTEGER,
        wait_event       TEXT,
        hook_token_hash  TEXT,
        doc              TEXT NOT NULL
    )
    """,
    # Claims walk only due, active, unpaused runs in next_run_at order: the
    # cost is O(log n + due runs), whatever the number of finished or
    # sleeping runs.
    f"CREATE INDEX runs_claimable ON runs (next_run_at) WHERE {CLAIMABLE_SQL}",
    # Idempotent create. Unique indexes treat NULLs as distinct, so the tenant
    # goes in as (is-null flag, value): a NULL tenant and a '' tenant differ.
    "CREATE UNIQUE INDEX runs_idempotency ON runs "
    "(workflow_id, tenant_id IS NULL, ifnull(tenant_id, ''), idempotency_key) "
    f"WHERE idempotency_key IS NOT NULL AND {ACTIVE_SQL}",
    # Keyset pagination for both sort fields, plus the usual list filters.
    "CREATE INDEX runs_created ON runs (created_at, id)",
    "CREATE INDEX runs_updated ON runs (updated_at, id)",
    "CREATE INDEX runs_workflow ON runs (workflow_id, created_at, id)",
    "CREATE INDEX runs_tenant ON runs (tenant_id, created_at, id) WHERE tenant_id IS NOT NULL",
    # Broadcast events and hook resumes look runs up by these.
    "CREATE INDEX runs_wait_event ON runs (wait_event) WHERE wait_event IS NOT NULL",
    "CREATE INDEX runs_hook ON runs (hook_token_hash) WHERE hook_token_hash IS NOT NULL",
)

# Version 2: idempotency keys constrain create only (see the Store contract):
# a transition may revive a finished run whose key another active run holds
# (a rewind). Create's check-then-insert runs inside BEGIN IMMEDIATE, which
# excludes every other writer, so the lookup index need not be unique.
_V2 = (
    "DROP INDEX runs_idempotency",
    "CREATE INDEX runs_idempotency ON runs "
    "(workflow_id, tenant_id IS NULL, ifnull(tenant_id, ''), idempotency_key) "
    f"WHERE idempotency_key IS NOT NULL AND {ACTIVE_SQL}",
)

# Version 3: the claim index follows the claim's order (priority desc, due
# time, id) and leaves out runs with no due time (waiting for a person or an
# event), so a claim reads only the rows it returns: O(log n + limit) however
# many runs are queued or waiting, with no sort.
_V3 = (
    "DROP INDEX runs_claimable",
    "CREATE INDEX runs_claimable ON runs (priority DESC, next_run_at, id) "
    f"WHERE {CLAIMABLE_SQL} AND next_run_at IS NOT NULL",
)

# Version 4: child runs are looked up by their parent (every join and every
# cancel cascade): a column (set on create; a write rarely touches it), and an
# index holding only child runs. Runs stored before have no parent.
_V4 = (
    "ALTER TABLE runs ADD COLUMN parent_run_id TEXT",
    "CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL",
)

# Version 5: flow control. Limited runs (a concurrency or rate key) leave the
# plain claim's index and get their own, in the same claim order; live leases
# per slot bucket and begins per rate bucket are counted by index ranges.
LIMITED_SQL = "(concurrency_key IS NOT NULL OR rate_key IS NOT NULL)"
PLAIN_SQL = "concurrency_key IS NULL AND rate_key IS NULL"
_V5 = (
    "ALTER TABLE runs ADD COLUMN concurrency_key TEXT",
    "ALTER TABLE runs ADD COLUMN rate_key TEXT",
    "ALTER TABLE runs ADD COLUMN began_at INTEGER",
    "ALTER TABLE runs ADD COLUMN concurrency_limit INTEGER",
    "ALTER TABLE runs ADD COLUMN rate_limit INTEGER",
    "ALTER TABLE runs ADD COLUMN rate_period REAL",
    "DROP INDEX runs_claimable",
    "CREATE INDEX runs_claimable ON runs (priority DESC, next_run_at, id) "
    f"WHERE {CLAIMABLE_SQL} AND next_run_at IS NOT NULL AND {PLAIN_SQL}",
    "CREATE INDEX runs_limited ON runs (priority DESC, next_run_at, id) "
    f"WHERE {CLAIMABLE_SQL} AND next_run_at IS NOT NULL AND {LIMITED_SQL}",
    "CREATE INDEX runs_slots ON runs (concurrency_key, workflow_id, lease_expires_at) "
    "WHERE concurrency_key IS NOT NULL AND lease_expires_at IS NOT NULL",
    "CREATE INDEX runs_rate ON runs (rate_key, workflow_id, began_at) "
    "WHERE rate_key IS NOT NULL AND began_at IS NOT NULL",
)

_MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5)
SCHEMA_VERSION = len(_MIGRATIONS)


MIN_SQLITE_VERSION = (3, 35, 0)
"""``UPDATE … RETURNING`` (claims, heartbeats) arrived in SQLite 3.35."""


def check_sqlite_version() -> None:
    """Refuse an SQLite library too old for the statements the store runs.

    Raises:
        StoreUnavailableError: The linked SQLite predates 3.35.
    """
    if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
        needed = ".".join(map(str, MIN_SQLITE_VERSION))
        raise StoreUnavailableError(
            f"streamline_sqlite needs SQLite {needed} or newer; "
            f"this Python links SQLite {sqlite3.sqlite_version}"
        )


def connect(
    path: str, *, synchronous: str, busy_timeout: float, writer: bool, read_only: bool = False
) -> sqlite3.Connection:
    """Open and configure one connection (on the thread that will use it).

    Args:
        path: Database file, or ``":memory:"``.
        synchronous: ``PRAGMA synchronous`` level (validated by the caller).
        busy_timeout: Seconds to wait for another connection's lock.
        writer: Whether this is the write connection; it switches the file
            to WAL (persistent) and the others are made read-only.
        read_only: Open the file with SQLite's ``mode=ro`` (never creating or
            writing it), falling back to ``immutable=1`` when the directory
            cannot be written (SQLite cannot create the WAL's shared-memory
            file on a read-only mount); the schema version must be current.

    Raises:
        StoreUnavailableError: (read-only) The file holds no streamline schema,
            or an older or newer one.
        sqlite3.Error: Left to the caller's translation.
    """
    if not read_only:
        return _configured(
            _open(path, busy_timeout=busy_timeout, writer=writer, uri=False),
            path,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            writer=writer,
            read_only=False,
        )
    try:
        conn = _open(
            _read_only_uri(path, immutable=False),
            busy_timeout=busy_timeout,
            writer=writer,
            uri=True,
        )
        return _configured(
            conn, path, synchronous=synchronous, busy_timeout=busy_timeout, writer=writer
        )
    except sqlite3.OperationalError:
        if _writable_dir(path):
            raise
    conn = _open(
        _read_only_uri(path, immutable=True), busy_timeout=busy_timeout, writer=writer, uri=True
    )
    return _configured(
        conn, path, synchronous=synchronous, busy_timeout=busy_timeout, writer=writer
    )


def _configured(
    conn: sqlite3.Connection,
    path: str,
    *,
    synchronous: str,
    busy_timeout: float,
    writer: bool,
    read_only: bool = True,
) -> sqlite3.Connection:
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if writer:
            # WAL lets readers (this store's reader thread and other
            # processes) run beside the writer; the mode sticks to the file.
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
        else:
            conn.execute("PRAGMA query_only = 1")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # Touch the schema so a garbage file fails here, not on first use.
        version = _user_version(conn)
        if read_only:
            _check_read_only_version(version, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _open(target: str, *, busy_timeout: float, writer: bool, uri: bool) -> sqlite3.Connection:
    # isolation_level=None: the store issues BEGIN/COMMIT itself, and a
    # statement outside them is its own (read) transaction.
    return sqlite3.connect(
        target,
        timeout=busy_timeout,
        isolation_level=None,
        cached_statements=256,
        # The writer's connection is also used on the event loop's thread
        # (inline commits), never at the same time as on its own.
        check_same_thread=not writer,
        uri=uri,
    )


def _read_only_uri(path: str, *, immutable: bool) -> str:
    absolute = quote(os.path.abspath(path))
    return f"file:{absolute}?mode=ro" + ("&immutable=1" if immutable else "")


def _writable_dir(path: str) -> bool:
    return os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)


def _check_read_only_version(version: int, path: str) -> None:
    _refuse_newer(version, path)
    if version == 0:
        raise StoreUnavailableError(f"{path} holds no streamline runs table (an empty database?)")
    if version < SCHEMA_VERSION:
        raise StoreUnavailableError(
            f"SQLite database {path} has schema version {version}, older than version "
            f"{SCHEMA_VERSION}; open it once read-write to upgrade it"
        )


def prepare_path(path: str, *, create: bool) -> None:
    """Check (or, when ``create``, make) what opening the database file at ``path`` needs.

    Args:
        path: Database file.
        create: Create the missing parent directories; otherwise the file
            must already exist.

    Raises:
        StoreUnavailableError: No database at ``path`` (not ``create``), ``path``
            is a directory, or a parent directory cannot be created (the
            message names the path in the way and the cause).
    """
    target = Path(path)
    if target.is_dir():
        raise StoreUnavailableError(f"{path} is a directory, not a SQLite database")
    if not create:
        if not target.exists():
            raise StoreUnavailableError(f"no database at {path}")
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = _first_non_directory(target.parent)
        cause = f"{blocker} is a file" if blocker is not None else _cause(exc)
        raise StoreUnavailableError(
            f"cannot create the directory {target.parent} for SQLite database {path}: {cause}"
        ) from None


def _first_non_directory(directory: Path) -> Path | None:
    for candidate in reversed((directory, *directory.parents)):
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return None


def _cause(exc: OSError) -> str:
    return exc.strerror or str(exc)


def explain_open_failure(exc: WorkflowError, path: str, *, read_only: bool) -> WorkflowError:
    """``exc`` (opening ``path`` failed) as an error naming the path and the likely cause.

    Args:
        exc: The translated error from opening the connections.
        path: Database file.
        read_only: Whether the store was opened read-only.

    Returns:
        ``exc`` itself when it already names the path (schema versions), a
        ``DataCorruptionError`` naming the path for a file that is not a
        database, else a ``StoreUnavailableError`` naming the path and why.
    """
    message = str(exc)
    if path in message:
        return exc
    if isinstance(exc, DataCorruptionError):
        return DataCorruptionError(
            f"{path} is not a SQLite database or is damaged ({message})", details=exc.details
        )
    if not isinstance(exc, StoreUnavailableError) or path in (":memory:", ""):
        return exc
    directory = os.path.dirname(os.path.abspath(path)) or "."
    cause = message.removeprefix("SQLite store unavailable: ")
    if _read_only_fs(directory):
        cause = f"{directory} is on a read-only file system"
    elif not read_only and not os.access(directory, os.W_OK):
        cause = f"no permission to write in {directory}"
    elif os.path.exists(path) and not os.access(path, os.R_OK):
        cause = f"no permission to read {path}"
    how = "read-only " if read_only else ""
    return StoreUnavailableError(
        f"cannot open SQLite database {path} {how}({cause})", details=exc.details
    )


def _read_only_fs(directory: str) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _refuse_newer(version: int, path: str) -> None:
    if version > SCHEMA_VERSION:
        raise StoreUnavailableError(
            f"SQLite database {path!r} has schema version {version}, newer than "
            f"version {SCHEMA_VERSION} that this streamline_sqlite supports; "
            "upgrade streamline to open it",
            details={"schema_version": version, "supported_version": SCHEMA_VERSION},
        )


def ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create or migrate the schema to :data:`SCHEMA_VERSION`.

    Race-safe across processes: the version is re-read under ``BEGIN
    IMMEDIATE``, so of two processes opening a new file one creates the
    schema and the other finds it done.

    Raises:
        StoreUnavailableError: The file was written by a newer schema version.
        sqlite3.Error: Left to the caller's translation.
    """
    version = _user_version(conn)
    _refuse_newer(version, path)
    if version == SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = _user_version(conn)
        _refuse_newer(version, path)
        for migration in _MIGRATIONS[version:]:
            for statement in migration:
                conn.execute(statement)
        # user_version is part of the transaction: schema and version land together.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
