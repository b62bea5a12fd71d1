"""The shipped stores as the benchmarks build them, and wrappers that count their work.

``CountingStore`` counts store writes (create, transition, one per claimed
run, heartbeat); ``CountingDatabase`` counts calls the Mongo store makes on
its collection, i.e. driver round trips.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamline_core.store import Store
from streamline_testing import InMemoryStore


class CountingStore:
    """A Store that forwards everything and counts the writes (and the reads)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.writes = 0
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create(self, run: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return await self.inner.create(run, **kwargs)

    async def transition(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return await self.inner.transition(*args, **kwargs)

    async def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return await self.inner.heartbeat(*args, **kwargs)

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        runs = await self.inner.claim(*args, **kwargs)
        self.writes += len(runs)
        return runs

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await self.inner.get(*args, **kwargs)

    async def find(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await self.inner.find(*args, **kwargs)

    async def count(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return await self.inner.count(*args, **kwargs)


class _CountingCollection:
    def __init__(self, inner: Any, counter: CountingDatabase) -> None:
        self._inner = inner
        self._counter = counter

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not callable(value) or name.startswith("_") or name in _LOCAL_METHODS:
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._counter.round_trips += 1
            self._counter.bytes_sent += _bson_size(*args, *kwargs.values())
            return value(*args, **kwargs)

        return call


# Collection methods that build something locally and never reach the server.
_LOCAL_METHODS = frozenset({"with_options", "get_collection"})


def _bson_size(*values: Any) -> int:
    """BSON bytes of the documents among ``values`` (filters, updates, inserted documents)."""
    import bson

    size = 0
    for value in values:
        if isinstance(value, dict):
            try:
                size += len(bson.encode(value))
            except Exception:  # not a document the driver would send as one
                pass
    return size


class CountingDatabase:
    """A database whose collections count the calls made on them (one per round trip)
    and the BSON bytes of the documents those calls send."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.round_trips = 0
        self.bytes_sent = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_collection(self, name: str, **options: Any) -> Any:
        return _CountingCollection(self._inner.get_collection(name, **options), self)


def memory() -> Store:
    """A fresh in-memory store."""
    return InMemoryStore()


def sqlite_factory(directory: str | None = None, synchronous: str = "FULL") -> Callable[[], Store]:
    """A factory of SQLite stores, each on a new file in ``directory`` (default: a new temp dir)."""
    from streamline_sqlite import SQLiteStore

    tmp = Path(directory or tempfile.mkdtemp(prefix="streamline-bench-"))
    counter = iter(range(10**6))
    return lambda: SQLiteStore(str(tmp / f"bench-{next(counter)}.db"), synchronous=synchronous)


def mongo_factory() -> Callable[[], Store]:
    """A factory of Mongo stores on mongomock-motor, with driver calls counted.

    The database of the last store built is ``factory.last`` (a ``CountingDatabase``).
    """
    from mongomock_motor import AsyncMongoMockClient

    from streamline_mongo import MongoStore

    def make() -> Store:
        db = CountingDatabase(AsyncMongoMockClient(tz_aware=True)[f"bench_{os.urandom(4).hex()}"])
        make.last = db  # type: ignore[attr-defined]
        return MongoStore(db)  # type: ignore[arg-type]

    return make


def postgres_factory() -> Callable[[], Store]:
    """A factory of PostgreSQL stores, each on a new table of ``$STREAMLINE_BENCH_POSTGRES_URL``."""
    import uuid

    from streamline_postgres import PostgresStore

    url = os.environ["STREAMLINE_BENCH_POSTGRES_URL"]
    size = int(os.environ.get("STREAMLINE_BENCH_POSTGRES_POOL", "10"))  # the store's default
    return lambda: PostgresStore(url, table=f"bench_{uuid.uuid4().hex[:12]}", max_size=size)
