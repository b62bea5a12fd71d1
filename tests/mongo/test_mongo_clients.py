"""Client handling: from_url, ownership, Motor databases, package exports."""

from __future__ import annotations

import asyncio
import importlib.metadata
import socket
from urllib.parse import urlsplit, urlunsplit

import pytest
from mongo_support import LIVE_URL, T0, WF, make_run
from pymongo import AsyncMongoClient
from pymongo.errors import ServerSelectionTimeoutError

import streamline_mongo
from streamline_core.errors import StoreUnavailableError, ValidationError
from streamline_core.store import RunQuery, Store
from streamline_mongo import MongoStore, from_url


def test_exports_are_pinned() -> None:
    assert streamline_mongo.__all__ == ["MongoStore", "from_url"]


def test_the_store_satisfies_the_store_protocol(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            assert isinstance(store, Store)

    asyncio.run(scenario())


def test_entry_points_resolve_to_from_url() -> None:
    points = importlib.metadata.entry_points(group="streamline.stores")
    by_name = {p.name: p for p in points}
    assert by_name["mongodb"].load() is from_url
    assert by_name["mongodb+srv"].load() is from_url


def test_from_url_takes_the_database_from_the_path() -> None:
    async def scenario() -> None:
        store = from_url("mongodb://localhost:27017/app?appname=test", collection="runs")
        try:
            assert repr(store) == "MongoStore(app.runs)"
            assert store.collection.name == "runs"
            assert store.collection.database.name == "app"
            assert store.collection.codec_options.tz_aware is True
        finally:
            await store.close()

    asyncio.run(scenario())


def test_from_url_accepts_srv_urls_without_resolving_them_early() -> None:
    async def scenario() -> None:
        store = from_url("mongodb+srv://cluster0.example.invalid/prod")
        assert repr(store) == "MongoStore(prod.workflow_runs)"
        await store.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("mongodb://user:s3cret@localhost:27017", "names no database"),
        ("mongodb://user:s3cret@localhost:27017/", "names no database"),
        ("mongodb://user:s3cret@localhost:notaport/app", "invalid MongoDB URL"),
        ("postgres://user:s3cret@localhost/app", "not a MongoDB URL"),
    ],
)
def test_from_url_rejects_bad_urls_clearly(url, needle) -> None:
    with pytest.raises(ValidationError, match=needle) as caught:
        from_url(url)
    assert "s3cret" not in str(caught.value)  # credentials never echoed


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_store_from_url_closes_its_client_idempotently() -> None:
    async def scenario() -> None:
        url = f"mongodb://127.0.0.1:{_closed_port()}/app?serverSelectionTimeoutMS=50"
        store = from_url(url)
        await store.close()
        await store.close()
        # The client is closed: using it fails at once, translated.
        with pytest.raises(StoreUnavailableError, match="InvalidOperation"):
            await store.get("r1")

    asyncio.run(scenario())


def test_a_store_on_a_passed_in_database_leaves_the_client_open() -> None:
    async def scenario() -> None:
        url = f"mongodb://127.0.0.1:{_closed_port()}/app"
        client: AsyncMongoClient[dict] = AsyncMongoClient(url, serverSelectionTimeoutMS=50)
        try:
            store = MongoStore(client["app"])
            await store.close()
            # Still open: the call goes on to server selection (unreachable here).
            with pytest.raises(ServerSelectionTimeoutError):
                await client["app"]["x"].find_one({})
        finally:
            await client.close()

    asyncio.run(scenario())


async def _exercise(store: MongoStore) -> None:
    run, created = await store.create(make_run(idempotency_key="k"))
    assert created
    (claimed,) = await store.claim("w", T0, 30, 1, {WF})
    assert await store.heartbeat(run.id, "w", T0, 30) == "running"
    done = await store.transition(run.id, claimed.revision, {"status": "done"}, owner="w")
    assert done.revision == claimed.revision + 1
    assert (await store.find(RunQuery(status="done"))).items == [done]
    assert await store.count(RunQuery()) == 1
    await store.ensure_indexes(context_fields=["url"], auto_cleanup_days=1)
    assert await store.delete(RunQuery(status="done")) == 1


def test_a_motor_shaped_database_is_accepted(mongo_database) -> None:
    # mongomock-motor masquerades as Motor; on a live server this is real Motor.
    async def scenario() -> None:
        async with mongo_database(motor=True) as db:
            assert type(db).__name__ == "AsyncIOMotorDatabase" or "Motor" in repr(type(db))
            await _exercise(MongoStore(db))

    asyncio.run(scenario())


def test_a_real_motor_database_is_accepted_and_errors_are_translated() -> None:
    from motor.motor_asyncio import AsyncIOMotorClient

    async def scenario() -> None:
        url = f"mongodb://127.0.0.1:{_closed_port()}/app"
        client = AsyncIOMotorClient(url, serverSelectionTimeoutMS=50)
        try:
            store = MongoStore(client["app"])
            with pytest.raises(StoreUnavailableError):
                await store.count(RunQuery())
        finally:
            client.close()

    asyncio.run(scenario())


@pytest.mark.skipif(LIVE_URL is None, reason="needs STREAMLINE_TEST_MONGO_URL")
def test_from_url_against_the_live_server() -> None:
    assert LIVE_URL is not None
    parts = urlsplit(LIVE_URL)
    name = "streamline_test_from_url"
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))

    async def scenario() -> None:
        store = from_url(url)
        try:
            await _exercise(store)
        finally:
            await store.collection.database.client.drop_database(name)
            await store.close()

    asyncio.run(scenario())
