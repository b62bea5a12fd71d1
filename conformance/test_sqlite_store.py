"""SQLiteStore through the shipped conformance suite, as any backend author would run it.

Each store is a fresh database file in its own temporary directory; the
second handle is another ``SQLiteStore`` on the same file (its own writer and
reader connections), so the races also cross connections.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

from streamline_core.store import Store
from streamline_sqlite import SQLiteStore
from streamline_testing.conformance import (
    Capabilities,
    CrashRecovery,
    StoreContract,
    StoreHarness,
    StoreStateMachine,
)


class SQLiteStoreHarness(StoreHarness):
    """A fresh database file per store; ``another_handle`` opens the same file again."""

    capabilities = Capabilities(second_handle=True, corrupt_documents=True)

    async def make_store(self) -> Store:
        directory = Path(tempfile.mkdtemp(prefix="streamline-conformance-"))
        store = SQLiteStore(directory / "runs.db")
        self._directories()[id(store)] = directory
        return store

    async def another_handle(self, store: Store) -> Store:
        assert isinstance(store, SQLiteStore)
        return SQLiteStore(store.path)

    async def corrupt_document(self, store: Store, run_id: str) -> None:
        assert isinstance(store, SQLiteStore)
        # Text that is not JSON, as a bad migration might leave; the columns stay.
        with closing(sqlite3.connect(store.path)) as conn, conn:
            conn.execute("UPDATE runs SET doc = '{not json' WHERE id = ?", (run_id,))

    async def dispose(self, store: Store) -> None:
        await store.close()
        directory = self._directories().pop(id(store), None)
        if directory is not None:  # the first handle owns the file (disposed last)
            shutil.rmtree(directory, ignore_errors=True)

    def _directories(self) -> dict[int, Path]:
        found: dict[int, Path] = self.__dict__.setdefault("_sqlite_directories", {})
        return found


class TestSQLiteStore(SQLiteStoreHarness, StoreContract):
    """One test per clause of the Store contract."""


class SQLiteStoreMachine(SQLiteStoreHarness, StoreStateMachine):
    """The state machine, checked against the independent model."""


TestSQLiteStoreMachine = SQLiteStoreMachine.TestCase


class TestSQLiteStoreCrashes(SQLiteStoreHarness, CrashRecovery):
    """The engine on this store survives a worker dying at any store call."""
