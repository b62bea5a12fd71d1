"""PostgresStore through the shipped conformance suite, against a real PostgreSQL server.

The server is the test run's own throwaway cluster (``tests/postgres/server.py``)
or the one ``$STREAMLINE_TEST_POSTGRES_URL`` names. Each store gets a table
of its own (emptied and recycled afterwards), so stores share nothing; the second handle
is another ``PostgresStore`` with its own connection pool on the same table,
so every race crosses real connections and real row locks.
"""

from __future__ import annotations

import psycopg

from streamline_core.store import Store
from streamline_postgres import PostgresStore
from streamline_testing.conformance import (
    Capabilities,
    CrashRecovery,
    StoreContract,
    StoreHarness,
    StoreStateMachine,
)
from tests.postgres.server import fresh_table, recycle_table, server_url


class PostgresStoreHarness(StoreHarness):
    """A fresh table per store; ``another_handle`` opens a second pool on it."""

    capabilities = Capabilities(second_handle=True, corrupt_documents=True)

    async def make_store(self) -> Store:
        # The suite decides expiry with the `now` it passes: the caller's clock.
        store = PostgresStore(
            server_url(), table=fresh_table("runs"), max_size=12, lease_clock="caller"
        )
        self._owners().add(id(store))
        return store

    async def another_handle(self, store: Store) -> Store:
        assert isinstance(store, PostgresStore)
        return PostgresStore(server_url(), table=store.table, max_size=12, lease_clock="caller")

    async def corrupt_document(self, store: Store, run_id: str) -> None:
        assert isinstance(store, PostgresStore)
        # JSONB holds only JSON (and the table only objects): the worst it can
        # hold is an object that is no valid run. The generated columns the
        # claim selects on are untouched.
        async with await psycopg.AsyncConnection.connect(server_url(), autocommit=True) as conn:
            await conn.execute(
                f"UPDATE {store.table} SET doc = jsonb_set(doc, '{{steps}}', '\"garbage\"') "
                "WHERE id = %s",
                (run_id,),
            )

    async def dispose(self, store: Store) -> None:
        await store.close()
        assert isinstance(store, PostgresStore)
        if id(store) in self._owners():  # the first handle owns the table (disposed last)
            self._owners().discard(id(store))
            await recycle_table(store.table)

    def _owners(self) -> set[int]:
        found: set[int] = self.__dict__.setdefault("_postgres_owners", set())
        return found


class TestPostgresStore(PostgresStoreHarness, StoreContract):
    """One test per clause of the Store contract."""


class PostgresStoreMachine(PostgresStoreHarness, StoreStateMachine):
    """The state machine, checked against the independent model."""


TestPostgresStoreMachine = PostgresStoreMachine.TestCase


class TestPostgresStoreCrashes(PostgresStoreHarness, CrashRecovery):
    """The engine on this store survives a worker dying at any store call."""
