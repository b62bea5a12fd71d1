"""A database file removed or replaced under an open SQLite store fails loudly, never silently."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

import streamline_sqlite._file as file_module
from streamline_core import Engine, StoreUnavailableError
from streamline_sqlite import SQLiteStore
from streamline_testing import FakeClock


@pytest.fixture(autouse=True)
def check_every_write(monkeypatch: pytest.MonkeyPatch) -> None:
    # The check is throttled to every 0.1 s of real time; tests must not wait for it.
    monkeypatch.setattr(file_module, "CHECK_EVERY", 0.0)


def _client(path: Path) -> tuple[Engine, SQLiteStore]:
    store = SQLiteStore(str(path))
    engine = Engine(store, clock=FakeClock(), load_entry_point_plugins=False)
    engine.workflow("w", steps={"a": lambda ctx: 1})
    return engine, store


def test_a_removed_database_directory_makes_writes_fail(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    engine, store = _client(folder / "runs.db")

    async def main() -> None:
        wf = engine.get_workflow("w")
        await wf.start()
        shutil.rmtree(folder)
        with pytest.raises(StoreUnavailableError, match="was removed while open"):
            await wf.start()
        await store.close()

    asyncio.run(main())


def test_a_database_file_replaced_by_another_makes_writes_fail(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    engine, store = _client(path)

    async def main() -> None:
        wf = engine.get_workflow("w")
        await wf.start()
        other = tmp_path / "other.db"
        sqlite3.connect(other).close()
        os.replace(other, path)
        with pytest.raises(StoreUnavailableError, match="was replaced by another file"):
            await wf.start()
        await store.close()

    asyncio.run(main())


def test_an_untouched_file_passes_the_check(tmp_path: Path) -> None:
    engine, store = _client(tmp_path / "runs.db")

    async def main() -> None:
        wf = engine.get_workflow("w")
        for _ in range(3):
            await wf.start()
        assert await engine.runs.count() == 3
        await store.close()

    asyncio.run(main())
