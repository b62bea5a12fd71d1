"""Shared test configuration: store selection (``--store``), async tests, hypothesis profiles.

Engine tests take the ``env`` fixture: a fresh store of the kind chosen with
``--store=memory|sqlite|mongo|postgres`` (default all; postgres runs on the
test run's own throwaway server, see ``tests/postgres/server.py``), a ``FakeClock``, and an
``env.engine(...)`` factory. ``async def`` tests run on their own event loop
(no asyncio plugin needed); engines and the store are closed afterwards.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from streamline_core import Engine
from streamline_core.store import Store
from streamline_testing import FakeClock, InMemoryStore

# pytest-xdist's workers export COLUMNS=80, and rich fixes a console's width when
# the console is built (streamline_cli builds its consoles at import): without
# this, the CLI tests' COLUMNS would be ignored under ``-n``.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

STORES = ("memory", "sqlite", "mongo", "postgres")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store",
        action="store",
        default=os.environ.get("STREAMLINE_TEST_STORE", "all"),
        choices=(*STORES, "all"),
        help="store the engine tests run against: memory, sqlite, mongo, postgres, or all",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Engine tests (those using ``env``) run once per selected store."""
    if "store_kind" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--store")
        kinds = STORES if chosen == "all" else (chosen,)
        metafunc.parametrize("store_kind", kinds)


def make_store(kind: str, tmp_path: Path) -> Store:
    """A fresh, empty store of ``kind``."""
    if kind == "memory":
        return InMemoryStore()
    if kind == "sqlite":
        from streamline_sqlite import SQLiteStore

        return SQLiteStore(str(tmp_path / "runs.db"))
    if kind == "mongo":
        from streamline_mongo import MongoStore

        url = os.environ.get("STREAMLINE_TEST_MONGO_URL")
        if url:
            from pymongo import AsyncMongoClient

            client: Any = AsyncMongoClient(url, tz_aware=True)
            return MongoStore(client[f"streamline_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"])
        from mongomock_motor import AsyncMongoMockClient

        return MongoStore(AsyncMongoMockClient(tz_aware=True)["streamline_test"])
    if kind == "postgres":
        from streamline_postgres import PostgresStore
        from tests.postgres.server import fresh_table, server_url

        # A table of its own per test (a recycled one is empty): stores share nothing.
        return PostgresStore(server_url(), table=fresh_table())
    raise ValueError(kind)


class Env:
    """A test's store, fake clock and engines."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.clock = FakeClock()
        self.store = make_store(kind, tmp_path)
        self.engines: list[Engine] = []

    def engine(self, **kwargs: Any) -> Engine:
        """An engine on this store and clock (shut down after the test)."""
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("load_entry_point_plugins", False)
        engine = Engine(kwargs.pop("store", self.store), **kwargs)
        self.engines.append(engine)
        return engine

    async def settle(self) -> None:
        """Let background work (and store threads) finish what is ready."""
        for _ in range(5):
            await self.clock.settle()
            await asyncio.sleep(0.001 if self.kind != "memory" else 0)

    async def aclose(self) -> None:
        for engine in self.engines:
            await engine.shutdown(timeout=0.2)
        await self.store.close()
        if self.kind == "mongo" and os.environ.get("STREAMLINE_TEST_MONGO_URL"):
            db: Any = self.store.collection.database  # type: ignore[attr-defined]
            await db.client.drop_database(db.name)
            await db.client.close()
        if self.kind == "postgres":
            from tests.postgres.server import recycle_table

            await recycle_table(self.store.table)  # type: ignore[attr-defined]


@pytest.fixture
def env(store_kind: str, tmp_path: Path) -> Env:
    return Env(store_kind, tmp_path)


def pytest_configure(config: pytest.Config) -> None:
    """In the controlling process: the session's processes share one PostgreSQL cluster."""
    if not hasattr(config, "workerinput"):
        from tests.postgres.server import share_cluster

        share_cluster()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the throwaway PostgreSQL server once the whole session is done."""
    from tests.postgres.server import stop, stop_shared

    stop()
    if not hasattr(session.config, "workerinput"):
        stop_shared()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests on a fresh event loop; close the env's engines and store."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    funcargs = pyfuncitem.funcargs
    kwargs = {name: funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    env = funcargs.get("env")

    async def main() -> None:
        try:
            await asyncio.wait_for(pyfuncitem.obj(**kwargs), timeout=60)
        finally:
            if isinstance(env, Env):
                await env.aclose()

    asyncio.run(main())
    return True
