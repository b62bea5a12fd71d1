"""MongoStore through the shipped conformance suite, as any backend author would run it.

With ``STREAMLINE_TEST_MONGO_URL`` set, each store gets its own database on
that server (dropped afterwards) and the second handle is a second client.
Without it, the stores run on mongomock-motor; because mongomock-motor never
yields to the event loop, its collections are wrapped in a proxy that awaits
``asyncio.sleep(0)`` around every call, so that racing operations really
interleave (otherwise every race would run one call after another and prove
nothing). The second handle is then another ``MongoStore`` on the same mock
database.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from typing import Any

from streamline_core.store import Store
from streamline_mongo import MongoStore
from streamline_testing.conformance import (
    Capabilities,
    CrashRecovery,
    StoreContract,
    StoreHarness,
    StoreStateMachine,
)

LIVE_URL = os.environ.get("STREAMLINE_TEST_MONGO_URL") or None


class _YieldingCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    async def to_list(self, length: int | None = None) -> list[Any]:
        await asyncio.sleep(0)
        try:
            return list(await self._cursor.to_list(length))
        finally:
            await asyncio.sleep(0)


class _YieldingCollection:
    """Forwards to a mongomock-motor collection, yielding to the loop around each call."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def find(self, *args: Any, **kwargs: Any) -> _YieldingCursor:
        return _YieldingCursor(self._inner.find(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            try:
                result = target(*args, **kwargs)
                return await result if asyncio.iscoroutine(result) else result
            finally:
                await asyncio.sleep(0)

        return call


class _YieldingDatabase:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def name(self) -> str:
        return str(self._inner.name)

    def get_collection(self, name: str, **options: Any) -> _YieldingCollection:
        return _YieldingCollection(self._inner.get_collection(name, **options))


class MongoStoreHarness(StoreHarness):
    """A fresh database per store; the second handle is another store on the same data."""

    capabilities = Capabilities(second_handle=True, corrupt_documents=True)

    async def make_store(self) -> Store:
        name = f"streamline_conformance_{uuid.uuid4().hex[:12]}"
        if LIVE_URL is not None:
            return self._live(name, owner=True)
        from mongomock_motor import AsyncMongoMockClient

        db = AsyncMongoMockClient(tz_aware=True)[name]
        store = MongoStore(_YieldingDatabase(db), lease_clock="caller")  # type: ignore[arg-type]
        self._handles()[id(store)] = _Handle(db, name, live=False, owner=True)
        return store

    async def another_handle(self, store: Store) -> Store:
        first = self._handles()[id(store)]
        if first.live:
            return self._live(first.name, owner=False)
        return MongoStore(  # type: ignore[arg-type]
            _YieldingDatabase(first.source), lease_clock="caller"
        )

    async def corrupt_document(self, store: Store, run_id: str) -> None:
        assert isinstance(store, MongoStore)
        # BSON holds only documents: a document that is no valid run.
        await store.collection.update_one({"_id": run_id}, {"$set": {"steps": "garbage"}})

    async def dispose(self, store: Store) -> None:
        await store.close()
        handle = self._handles().pop(id(store), None)
        if handle is not None and handle.live:
            if handle.owner:
                await handle.source.drop_database(handle.name)
            await handle.source.close()

    def _live(self, name: str, *, owner: bool) -> Store:
        from pymongo import AsyncMongoClient

        client: Any = AsyncMongoClient(LIVE_URL, tz_aware=True)
        # The suite decides expiry with the `now` it passes: the caller's clock.
        store = MongoStore(client[name], lease_clock="caller")
        self._handles()[id(store)] = _Handle(client, name, live=True, owner=owner)
        return store

    def _handles(self) -> dict[int, _Handle]:
        found: dict[int, _Handle] = self.__dict__.setdefault("_mongo_handles", {})
        return found


@dataclass
class _Handle:
    source: Any  # a live client, or the mongomock database
    name: str
    live: bool
    owner: bool  # the first handle: drops the database when disposed


class TestMongoStore(MongoStoreHarness, StoreContract):
    """One test per clause of the Store contract."""


class MongoStoreMachine(MongoStoreHarness, StoreStateMachine):
    """The state machine, checked against the independent model."""


TestMongoStoreMachine = MongoStoreMachine.TestCase


class TestMongoStoreCrashes(MongoStoreHarness, CrashRecovery):
    """The engine on this store survives a worker dying at any store call."""
