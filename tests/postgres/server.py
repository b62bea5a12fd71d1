"""The test run's PostgreSQL server: one throwaway cluster per session, started on first use.

Under pytest the session's processes (the xdist workers) share one cluster:
``tests/conftest.py`` calls :func:`share_cluster` in the controlling
process, the first worker to need the server creates it (the others wait on
a file lock, then attach), and :func:`stop_shared` removes it once the
session is over. Elsewhere (a script, the benchmarks) a process starts its own.

:func:`server_url` starts the cluster (``tests/postgres/cluster.py``) on
first use and returns a URL to a fresh database on it; :func:`stop` (also
registered with ``atexit``) stops the server and removes its directory.
With ``$STREAMLINE_TEST_POSTGRES_URL`` set, that server is used instead and
nothing is started. Durability is switched off (``fsync``,
``synchronous_commit`` and ``full_page_writes``: see
:data:`~tests.postgres.cluster.FAST_TEST_SETTINGS`): the tests check
behaviour, not the disk. :func:`own_cluster` gives the cluster itself to a
fault test that stops and starts the server.

Tables are recycled: creating a store's table (a dozen indexes, a function,
a trigger) and dropping it costs ~100 ms, emptying it one ``DELETE``. A test
takes a table with :func:`fresh_table` and gives it back with
:func:`recycle_table`; the next test gets it empty, already migrated.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

from tests.postgres.cluster import FAST_TEST_SETTINGS, Cluster, PostgresUnavailable

__all__ = [
    "ENV",
    "PostgresUnavailable",
    "drop_table",
    "own_cluster",
    "recycle_table",
    "server_url",
    "share_cluster",
    "stop",
    "stop_shared",
    "fresh_table",
]

ENV = "STREAMLINE_TEST_POSTGRES_URL"
SHARED = "STREAMLINE_TEST_POSTGRES_SESSION"  # a directory: the session's one cluster
_DATABASE = "streamline_test"

_lock = threading.Lock()
_state: dict[str, object] = {}
_free_tables: list[str] = []  # emptied tables of earlier tests, migrated and ready


def _create() -> tuple[Cluster, str]:
    cluster = Cluster(FAST_TEST_SETTINGS)
    try:
        cluster.create()
        return cluster, cluster.createdb(_DATABASE)
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
        cluster.remove()
        raise PostgresUnavailable(f"cannot start the test PostgreSQL server: {exc}") from None


def _shared(directory: str) -> tuple[Cluster, str]:
    """The one cluster of a test session, created by the first process of the session to ask."""
    with open(Path(directory) / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the others wait for the first one's initdb
        info = Path(directory) / "cluster.json"
        if info.exists():
            found = json.loads(info.read_text())
            return Cluster.attach(found["root"], found["port"]), found["url"]
        cluster, url = _create()
        info.write_text(json.dumps({"root": str(cluster.root), "port": cluster.port, "url": url}))
        return Cluster.attach(str(cluster.root), cluster.port), url


def _cluster() -> Cluster:
    with _lock:
        cluster = _state.get("cluster")
        if isinstance(cluster, Cluster):
            if not cluster.running:  # a fault test stopped it and failed before restarting it
                cluster.start_server()
            return cluster
        failed = _state.get("failed")
        if isinstance(failed, str):
            raise PostgresUnavailable(failed)
        shared = os.environ.get(SHARED)
        try:
            cluster, url = _shared(shared) if shared else _create()
        except PostgresUnavailable as exc:
            _state["failed"] = str(exc)
            raise
        _state["cluster"], _state["url"] = cluster, url
        _state["owned"] = not shared
        return cluster


def server_url() -> str:
    """The URL of the test database, starting the throwaway cluster on first use.

    Raises:
        PostgresUnavailable: The server binaries are missing or the cluster
            did not start; the message names the failing command.
    """
    given = os.environ.get(ENV)
    if given:
        return given
    _cluster()
    url = _state["url"]
    assert isinstance(url, str)
    return url


def own_cluster() -> Cluster | None:
    """The test cluster, if this process alone uses it; else ``None``.

    ``None`` when ``$STREAMLINE_TEST_POSTGRES_URL`` is set, or under
    pytest-xdist (the session's workers share one cluster). A test may stop
    and start the cluster it is given (``stop_server``/``start_server``) if
    it leaves it running.
    """
    if os.environ.get(ENV) or os.environ.get("PYTEST_XDIST_WORKER"):
        return None
    return _cluster()


def share_cluster() -> None:
    """Make the processes of this test session (xdist workers) share one cluster.

    Called in the controlling process before the workers start;
    :func:`stop_shared` in it stops the cluster after they are done.
    """
    if not os.environ.get(ENV) and not os.environ.get(SHARED):
        os.environ[SHARED] = tempfile.mkdtemp(prefix="streamline-pg-session-")


def stop_shared() -> None:
    """Stop and delete the session's shared cluster (in the process that called share_cluster)."""
    directory = os.environ.pop(SHARED, None)
    if not directory:
        return
    info = Path(directory) / "cluster.json"
    if info.exists():
        found = json.loads(info.read_text())
        Cluster.attach(found["root"], found["port"]).remove()
    shutil.rmtree(directory, ignore_errors=True)


def stop() -> None:
    """Stop the throwaway cluster (if this process started one) and delete it.

    On a server of ``$STREAMLINE_TEST_POSTGRES_URL`` the recycled tables are dropped.
    """
    given = os.environ.get(ENV)
    if given and _free_tables:
        import psycopg

        try:
            with psycopg.connect(given, autocommit=True) as conn:
                while _free_tables:
                    table = _free_tables.pop()
                    conn.execute(f'DROP TABLE IF EXISTS "{table}"'.encode())
                    conn.execute(f'DROP FUNCTION IF EXISTS "{table}_notify"()'.encode())
                    conn.execute("DELETE FROM streamline_schema WHERE table_name = %s", (table,))
        except psycopg.Error:
            pass
    _free_tables.clear()
    cluster = _state.pop("cluster", None)
    if isinstance(cluster, Cluster) and _state.pop("owned", False):
        cluster.remove()  # a shared one is stop_shared's
    _state.pop("url", None)


atexit.register(stop)


async def drop_table(table: str) -> None:
    """Drop a test store's table and what belongs to it (its trigger function, its version)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(server_url(), autocommit=True) as conn:
        await conn.execute(f'DROP TABLE IF EXISTS "{table}"'.encode())
        await conn.execute(f'DROP FUNCTION IF EXISTS "{table}_notify"()'.encode())
        # A store that was never used created no version table either.
        await conn.execute(
            "DO $$ BEGIN IF to_regclass('streamline_schema') IS NOT NULL THEN "
            "DELETE FROM streamline_schema WHERE table_name = "
            + psycopg.sql.quote(table)
            + "; END IF; END $$"
        )


def fresh_table(prefix: str = "t") -> str:
    """A table name for a test's store: a recycled, empty one if there is one, else a new one."""
    return _free_tables.pop() if _free_tables else f"{prefix}_{uuid.uuid4().hex[:16]}"


async def recycle_table(table: str) -> None:
    """Empty a test store's table for the next test (one whose schema is not current is dropped)."""
    import psycopg

    from streamline_postgres._schema import SCHEMA_VERSION

    async with await psycopg.AsyncConnection.connect(server_url(), autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL AND to_regclass('streamline_schema') IS NOT NULL",
            (f'"{table}"',),
        )
        row = await cur.fetchone()
        if row is not None and row[0]:
            cur = await conn.execute(
                "SELECT version FROM streamline_schema WHERE table_name = %s", (table,)
            )
            version = await cur.fetchone()
            if version is not None and version[0] == SCHEMA_VERSION:
                await conn.execute(f'DELETE FROM "{table}"'.encode())
                _free_tables.append(table)
                return
    await drop_table(table)
