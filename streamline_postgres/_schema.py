"""The runs table, its indexes and its versioned migrations.

A run is one row: the whole document in ``doc`` (JSONB) and, beside it,
*generated* columns that PostgreSQL computes from ``doc`` on every write
(status, due time, priority, lease owner and expiry, workflow and version,
tenant, idempotency key, times, wait event, hook hash). Generated columns
mean a write only ever sets ``doc``: a patch on any path, however nested
(``lease``, ``wait.until``, ``steps.3``), keeps every indexed column exact
without the store having to know which columns a path feeds, and no write
can leave a column disagreeing with the document.

Datetimes are stored in ``doc`` as ISO 8601 text with an explicit offset
(the store always writes aware UTC), so turning them into ``timestamptz``
does not depend on the session's time zone; :data:`TS_FUNCTION` declares
that cast immutable, which generated columns require.

Migrations are numbered; ``streamline_schema`` records the version applied
to each table. Opening a store applies the missing ones in one transaction
under an advisory lock, so stores opening at once never race, and refuses a
table written by a newer version of this package.
"""

from __future__ import annotations

import re

__all__ = [
    "ACTIVE",
    "LIMITED_SQL",
    "PLAIN_SQL",
    "SCHEMA_VERSION",
    "VERSION_TABLE",
    "channel_for",
    "check_table_name",
    "migrations",
    "quote",
]

ACTIVE = ("draft", "running", "waiting")
_ACTIVE_SQL = "status IN ('draft', 'running', 'waiting')"
VERSION_TABLE = "streamline_schema"
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")

# Immutable by declaration: correct because every datetime the store writes
# carries its offset, so the cast never consults the TimeZone setting.
TS_FUNCTION = (
    "CREATE OR REPLACE FUNCTION streamline_ts(text) RETURNS timestamptz "
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$ SELECT $1::timestamptz $$"
)


def check_table_name(table: str) -> str:
    """``table`` if it is a plain identifier (letters, digits, ``_``; up to 41 characters).

    Raises:
        ValueError: Anything else: the name is put into SQL text, so it is
            never taken from untrusted input unchecked.
    """
    if not _TABLE_NAME.fullmatch(table):
        raise ValueError(f"table must be a plain SQL identifier, not {table!r}")
    return table


def channel_for(table: str) -> str:
    """The ``LISTEN``/``NOTIFY`` channel of ``table`` (a plain identifier itself)."""
    return f"streamline_{table}".lower()


def quote(name: str) -> str:
    """``name`` as a quoted SQL identifier (already checked by :func:`check_table_name`)."""
    return '"' + name.replace('"', '""') + '"'


def _version_1(table: str) -> list[str]:
    t = quote(table)

    def ix(suffix: str) -> str:
        return quote(f"{table}_{suffix}")

    return [
        TS_FUNCTION,
        f"""CREATE TABLE {t} (
            id text PRIMARY KEY,
            doc jsonb NOT NULL CHECK (jsonb_typeof(doc) = 'object'),
            write_id text,
            key_hold text,
            workflow_id text GENERATED ALWAYS AS (doc->>'workflow_id') STORED,
            workflow_version text GENERATED ALWAYS AS (doc->>'workflow_version') STORED,
            tenant_id text GENERATED ALWAYS AS (doc->>'tenant_id') STORED,
            status text GENERATED ALWAYS AS (doc->>'status') STORED,
            paused boolean GENERATED ALWAYS AS (coalesce((doc->>'paused')::boolean, false))
                STORED,
            next_run_at timestamptz GENERATED ALWAYS AS (streamline_ts(doc->>'next_run_at'))
                STORED,
            priority bigint GENERATED ALWAYS AS (coalesce((doc->>'priority')::bigint, 0)) STORED,
            lease_owner text GENERATED ALWAYS AS (doc->'lease'->>'owner') STORED,
            lease_expires_at timestamptz
                GENERATED ALWAYS AS (streamline_ts(doc->'lease'->>'expires_at')) STORED,
            revision bigint GENERATED ALWAYS AS ((doc->>'revision')::bigint) STORED,
            idempotency_key text GENERATED ALWAYS AS (doc->>'idempotency_key') STORED,
            created_at timestamptz GENERATED ALWAYS AS (streamline_ts(doc->>'created_at')) STORED,
            updated_at timestamptz GENERATED ALWAYS AS (streamline_ts(doc->>'updated_at')) STORED,
            wait_event text GENERATED ALWAYS AS (
                CASE WHEN doc->'wait'->>'kind' = 'event' THEN doc->'wait'->>'event' END) STORED,
            hook_token_hash text GENERATED ALWAYS AS (doc->'wait'->>'hook_token_hash') STORED
        )""",
        # Only active, unpaused, due-dated runs, in claim order: a claim reads
        # O(log n + limit) index entries however many finished runs there are.
        f"CREATE INDEX {ix('claimable')} ON {t} (priority DESC, next_run_at, id) "
        f"WHERE {_ACTIVE_SQL} AND NOT paused AND next_run_at IS NOT NULL",
        # The idempotency constraint itself: one holder per key. A run holds
        # its key from its create while active and gives it up for good when
        # it ends (the store clears key_hold), so a transition that revives a
        # run never fails on a key. The null and "" tenants are different.
        f"CREATE UNIQUE INDEX {ix('idempotency')} ON {t} "
        "(workflow_id, (tenant_id IS NULL), (coalesce(tenant_id, '')), key_hold) "
        "WHERE key_hold IS NOT NULL",
        f"CREATE INDEX {ix('workflow')} ON {t} (workflow_id, created_at, id)",
        f"CREATE INDEX {ix('status')} ON {t} (status, created_at, id)",
        f"CREATE INDEX {ix('tenant')} ON {t} (tenant_id, created_at, id)",
        f"CREATE INDEX {ix('created')} ON {t} (created_at, id)",
        f"CREATE INDEX {ix('updated')} ON {t} (updated_at, id)",
        f"CREATE INDEX {ix('wait_event')} ON {t} (wait_event) WHERE wait_event IS NOT NULL",
        f"CREATE INDEX {ix('hook')} ON {t} (hook_token_hash) WHERE hook_token_hash IS NOT NULL",
        f"CREATE INDEX {ix('key')} ON {t} (idempotency_key) WHERE idempotency_key IS NOT NULL",
        # LISTEN/NOTIFY: a write that leaves a run claimable and due (by the
        # server's clock: only a hint, claims still use the engine's now)
        # notifies the table's channel, payload the workflow id.
        f"CREATE FUNCTION {ix('notify')}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN PERFORM pg_notify('{channel_for(table)}', NEW.workflow_id); RETURN NULL; END $$",
        f"CREATE TRIGGER {ix('due')} AFTER INSERT OR UPDATE ON {t} FOR EACH ROW "
        f"WHEN (NEW.{_ACTIVE_SQL} AND NOT NEW.paused AND NEW.lease_owner IS NULL "
        "AND NEW.next_run_at <= now()) "
        f"EXECUTE FUNCTION {ix('notify')}()",
    ]


def _version_2(table: str) -> list[str]:
    # Child runs are looked up by their parent (every join and cancel cascade).
    t = quote(table)
    return [
        f"CREATE INDEX {quote(f'{table}_parent')} ON {t} ((doc->>'parent_run_id')) "
        "WHERE (doc->>'parent_run_id') IS NOT NULL"
    ]


LIMITED_SQL = "(concurrency_key IS NOT NULL OR rate_key IS NOT NULL)"
PLAIN_SQL = "concurrency_key IS NULL AND rate_key IS NULL"


def _version_3(table: str) -> list[str]:
    """Flow control: the run's keys and begin time as columns; limited runs get their own
    claim index (and leave the plain one); live leases and begins are counted by index."""
    t = quote(table)

    def ix(suffix: str) -> str:
        return quote(f"{table}_{suffix}")

    return [
        f"ALTER TABLE {t} ADD COLUMN concurrency_key text "
        "GENERATED ALWAYS AS (doc->>'concurrency_key') STORED",
        f"ALTER TABLE {t} ADD COLUMN rate_key text GENERATED ALWAYS AS (doc->>'rate_key') STORED",
        f"ALTER TABLE {t} ADD COLUMN began_at timestamptz "
        "GENERATED ALWAYS AS (streamline_ts(doc->>'began_at')) STORED",
        f"ALTER TABLE {t} ADD COLUMN concurrency_limit integer GENERATED ALWAYS AS ("
        "CASE WHEN jsonb_typeof(doc->'concurrency_limit') = 'number' "
        "THEN (doc->>'concurrency_limit')::integer END) STORED",
        f"ALTER TABLE {t} ADD COLUMN rate_limit integer GENERATED ALWAYS AS ("
        "CASE WHEN jsonb_typeof(doc->'rate_limit') = 'number' "
        "THEN (doc->>'rate_limit')::integer END) STORED",
        f"ALTER TABLE {t} ADD COLUMN rate_period float8 GENERATED ALWAYS AS ("
        "CASE WHEN jsonb_typeof(doc->'rate_period') = 'number' "
        "THEN (doc->>'rate_period')::float8 END) STORED",
        f"DROP INDEX {ix('claimable')}",
        f"CREATE INDEX {ix('claimable')} ON {t} (priority DESC, next_run_at, id) "
        f"WHERE {_ACTIVE_SQL} AND NOT paused AND next_run_at IS NOT NULL AND {PLAIN_SQL}",
        f"CREATE INDEX {ix('limited')} ON {t} (priority DESC, next_run_at, id) "
        f"WHERE {_ACTIVE_SQL} AND NOT paused AND next_run_at IS NOT NULL AND {LIMITED_SQL}",
        f"CREATE INDEX {ix('slots')} ON {t} (concurrency_key, workflow_id, lease_expires_at) "
        "WHERE concurrency_key IS NOT NULL AND lease_expires_at IS NOT NULL",
        f"CREATE INDEX {ix('rate')} ON {t} (rate_key, workflow_id, began_at) "
        "WHERE rate_key IS NOT NULL AND began_at IS NOT NULL",
    ]


# Append-only: a released migration is never edited, a change is a new one.
_MIGRATIONS = (_version_1, _version_2, _version_3)
SCHEMA_VERSION = len(_MIGRATIONS)


def migrations(table: str, current: int) -> list[tuple[int, list[str]]]:
    """The migrations a table at schema version ``current`` still needs, in order."""
    return [(n + 1, step(table)) for n, step in enumerate(_MIGRATIONS) if n + 1 > current]
