"""PostgreSQL-specific behaviour the shared suites do not reach: URLs, schema versions, NOTIFY."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from streamline_core.errors import StoreUnavailableError, ValidationError
from streamline_core.run import WorkflowRun
from streamline_postgres import PostgresStore, from_url
from streamline_postgres._errors import is_ambiguous
from tests.postgres.server import drop_table, server_url

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _run(run_id: str, **fields: object) -> WorkflowRun:
    return WorkflowRun.model_validate(
        {"id": run_id, "workflow_id": "wf", "created_at": NOW, "updated_at": NOW, **fields}
    )


def test_urls_keep_libpq_parameters_and_take_ours_out() -> None:
    store = from_url("postgres://u:pw@/db?host=/tmp&table=runs_x&pool_max_size=3")
    assert store.table == "runs_x"
    with pytest.raises(ValidationError, match=r"\*\*\*@"):  # the password is never echoed
        from_url("postgresql://u:pw@h/db?table=no-good")
    with pytest.raises(ValidationError):
        from_url("mysql://h/db")


async def test_a_table_of_a_newer_schema_is_refused_and_a_nul_is_a_validation_error() -> None:
    table = f"t_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(server_url(), table=table)
    try:
        with pytest.raises(ValidationError):
            await store.create(_run("nul", context={"v": "a\x00b"}))
        async with await psycopg.AsyncConnection.connect(server_url(), autocommit=True) as c:
            await c.execute(
                "UPDATE streamline_schema SET version = 99 WHERE table_name = %s", (table,)
            )
        newer = PostgresStore(server_url(), table=table)
        with pytest.raises(StoreUnavailableError, match="newer"):
            await newer.get("x")
        await newer.close()
    finally:
        await store.close()
        await drop_table(table)


async def test_a_due_run_notifies_listeners() -> None:
    table = f"t_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(server_url(), table=table)
    try:
        await store.get("warm-up")  # creates the table
        listening = asyncio.ensure_future(store.wait_for_due(timeout=10))
        await asyncio.sleep(0.3)
        await store.create(_run("due", next_run_at=NOW.replace(year=2000)))
        assert await listening is True
        assert await store.wait_for_due(timeout=0.2) is False
    finally:
        await store.close()
        await drop_table(table)


async def test_an_unreachable_server_is_store_unavailable() -> None:
    store = PostgresStore("postgresql://nobody@/none?host=/nonexistent&port=1", timeout=0.5)
    with pytest.raises(StoreUnavailableError):
        await store.get("x")
    await store.close()


def test_a_dropped_connection_or_a_server_shutting_down_mid_write_is_ambiguous() -> None:
    # Such a write may have committed before the answer was lost: the store reads it back.
    from psycopg import errors as pg

    assert is_ambiguous(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert is_ambiguous(pg.AdminShutdown("terminating connection due to administrator command"))
    assert is_ambiguous(pg.CrashShutdown("terminating connection because of crash"))
    assert is_ambiguous(pg.ConnectionFailure("connection failure"))
    # An answer from the server means the statement did not commit.
    assert not is_ambiguous(pg.SerializationFailure("could not serialize"))
    assert not is_ambiguous(pg.QueryCanceled("canceling statement due to statement timeout"))
    assert not is_ambiguous(pg.UniqueViolation("duplicate key"))


async def test_a_worker_whose_clock_runs_ahead_does_not_steal_a_fresh_lease() -> None:
    """Lease expiry by the server's clock (``now()``): a claimer 60 s ahead takes nothing."""
    from datetime import timedelta

    table = f"t_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(server_url(), table=table)  # lease_clock="server", the default
    by_caller = PostgresStore(server_url(), table=table, lease_clock="caller")
    try:
        assert store.lease_clock == "server" and by_caller.lease_clock == "caller"
        real = datetime.now(UTC)
        await store.create(_run("r1", status="running", next_run_at=real - timedelta(seconds=1)))
        (held,) = await store.claim("w1", real, 30, 1, {"wf"})
        ahead = real + timedelta(seconds=60)
        assert await store.claim("w2", ahead, 30, 1, {"wf"}) == []
        # The same claim judged by the claimer's clock steals the live lease.
        (stolen,) = await by_caller.claim("w2", ahead, 30, 1, {"wf"})
        assert stolen.lease is not None and stolen.lease.owner == "w2"
        assert stolen.revision == held.revision + 1
    finally:
        await store.close()
        await by_caller.close()
        await drop_table(table)


async def test_a_heartbeat_renews_by_the_servers_clock() -> None:
    """A worker whose clock lags 60 s still renews for a full lease (by ``now()``)."""
    from datetime import timedelta

    table = f"t_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(server_url(), table=table)
    try:
        real = datetime.now(UTC)
        await store.create(_run("r1", status="running", next_run_at=real - timedelta(seconds=1)))
        await store.claim("w1", real, 30, 1, {"wf"})
        behind = real - timedelta(seconds=60)
        assert await store.heartbeat("r1", "w1", behind, 30) == "running"
        renewed = await store.get("r1")
        assert renewed is not None and renewed.lease is not None
        expires = renewed.lease.expires_at
        # now() + 30 s, not the lagging worker's now + 30 s (which had passed already).
        assert real + timedelta(seconds=29) < expires < datetime.now(UTC) + timedelta(seconds=31)
        assert await store.claim("w2", real + timedelta(seconds=5), 30, 1, {"wf"}) == []
    finally:
        await store.close()
        await drop_table(table)
