"""Fixtures for the Mongo store tests.

Without ``STREAMLINE_TEST_MONGO_URL`` every test runs on mongomock-motor (no
server needed). With it (``mongodb://localhost:27017`` in CI), every test
runs against that live server, each in a database of its own that is dropped
afterwards.

Tests drive their own event loop with ``asyncio.run``; the fixtures hand out
async context-manager factories so that clients are created inside that loop::

    def test_something(mongo_store):
        async def scenario():
            async with mongo_store() as store:
                ...
        asyncio.run(scenario())
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from mongo_support import LIVE_URL

from streamline_mongo import MongoStore

DatabaseFactory = Callable[..., AbstractAsyncContextManager[Any]]
StoreFactory = Callable[..., AbstractAsyncContextManager[MongoStore]]


@asynccontextmanager
async def _database(*, motor: bool = False, tz_aware: bool = True) -> AsyncIterator[Any]:
    name = f"streamline_test_{uuid.uuid4().hex[:16]}"
    if LIVE_URL is None:
        from mongomock_motor import AsyncMongoMockClient

        yield AsyncMongoMockClient(tz_aware=tz_aware)[name]
        return
    if motor:
        from motor.motor_asyncio import AsyncIOMotorClient

        motor_client = AsyncIOMotorClient(LIVE_URL, tz_aware=tz_aware)
        try:
            yield motor_client[name]
        finally:
            await motor_client.drop_database(name)
            motor_client.close()
        return
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(LIVE_URL, tz_aware=tz_aware)
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture
def mongo_database() -> DatabaseFactory:
    """Factory: ``async with mongo_database(motor=False, tz_aware=True) as db``.

    A fresh, empty database on mongomock-motor or on the live server. With
    ``motor=True`` and a live server the database is a real Motor one.
    """
    return _database


@pytest.fixture
def mongo_store() -> StoreFactory:
    """Factory: ``async with mongo_store(**options) as store``.

    A fresh ``MongoStore`` (``options`` go to its constructor) on a fresh
    database. To put a collection proxy between store and driver, build the
    store on ``WrappedDatabase(db, proxy_class)`` from ``mongo_database``.
    """

    @asynccontextmanager
    async def factory(**options: Any) -> AsyncIterator[MongoStore]:
        async with _database() as db:
            store = MongoStore(db, **options)
            try:
                yield store
            finally:
                await store.close()

    return factory
