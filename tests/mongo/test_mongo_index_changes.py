"""Index changes through the driver as a server sees them: ``collMod``, verify-only, quorum.

mongomock has no ``collMod``; :class:`CollModCollection` records the command
and applies it as a server would (the TTL period changes in place, no
rebuild). :class:`RecordingCollection` shows which index operations a store
sends at all.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mongo_support import RecordingCollection, WrappedDatabase, make_run
from pymongo.errors import OperationFailure

from streamline_core.errors import StoreError, StoreUnavailableError
from streamline_mongo import MongoStore

_INDEX_OPS = ("create_index", "drop_index", "update_many")


class _CollModDatabase:
    """The proxied collection's ``database``: runs ``collMod`` as a server does."""

    def __init__(self, collection: CollModCollection) -> None:
        self.collection = collection
        self.commands: list[dict[str, Any]] = []
        self.refuse: BaseException | None = None

    async def command(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.commands.append(spec)
        if self.refuse is not None:
            raise self.refuse
        assert set(spec) == {"collMod", "index"}, spec
        assert spec["collMod"] == self.collection.name
        index = spec["index"]
        inner = self.collection.inner
        info = (await inner.index_information())[index["name"]]
        options = {k: v for k, v in info.items() if k not in ("key", "v", "ns")}
        options["expireAfterSeconds"] = index["expireAfterSeconds"]
        # mongomock cannot alter an index: replace it underneath, unseen by the store.
        await inner.drop_index(index["name"])
        await inner.create_index(list(info["key"]), name=index["name"], **options)
        return {"ok": 1.0, "expireAfterSeconds_old": info.get("expireAfterSeconds")}


class CollModCollection(RecordingCollection):
    """Records calls, and offers a ``database`` whose ``command`` applies ``collMod``."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.database = _CollModDatabase(self)

    @property
    def name(self) -> str:
        return str(self.inner.name)


def _ttl(info: dict[str, Any]) -> int:
    return int(info["streamline_ttl_ended"]["expireAfterSeconds"])


def test_a_changed_cleanup_period_is_applied_in_place_with_collmod(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            wrapped = WrappedDatabase(db, CollModCollection)
            store = MongoStore(wrapped)
            await store.ensure_indexes(auto_cleanup_days=30)
            proxy: CollModCollection = wrapped.proxy
            proxy.calls.clear()
            assert await store.ensure_indexes(auto_cleanup_days=7) == ["streamline_ttl_ended"]
            assert proxy.database.commands == [
                {
                    "collMod": "workflow_runs",
                    "index": {"name": "streamline_ttl_ended", "expireAfterSeconds": 7 * 86400},
                }
            ]
            assert proxy.named("create_index", "drop_index") == []  # no rebuild
            assert _ttl(await proxy.inner.index_information()) == 7 * 86400

    asyncio.run(scenario())


def test_a_refused_collmod_is_a_configuration_error_not_a_rebuild(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            wrapped = WrappedDatabase(db, CollModCollection)
            store = MongoStore(wrapped)
            await store.ensure_indexes(auto_cleanup_days=30)
            proxy: CollModCollection = wrapped.proxy
            proxy.database.refuse = OperationFailure("not authorized on app", code=13)
            proxy.calls.clear()
            with pytest.raises(StoreError, match="privilege") as caught:
                await store.ensure_indexes(auto_cleanup_days=7)
            assert not isinstance(caught.value, StoreUnavailableError)
            assert proxy.named("create_index", "drop_index") == []
            assert _ttl(await proxy.inner.index_information()) == 30 * 86400

    asyncio.run(scenario())


def test_auto_indexes_false_only_reads_the_index_list(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            wrapped = WrappedDatabase(db, CollModCollection)
            checking = MongoStore(wrapped, auto_indexes=False)
            with pytest.raises(StoreError, match="auto_indexes=False") as caught:
                await checking.create(make_run())
            assert not isinstance(caught.value, StoreUnavailableError)
            with pytest.raises(StoreError, match="streamline_created_id"):
                await checking.ensure_indexes()
            proxy: CollModCollection = wrapped.proxy
            assert {c.name for c in proxy.calls} == {"index_information"}
            assert proxy.database.commands == []

    asyncio.run(scenario())


def test_auto_indexes_false_reports_a_changed_period_instead_of_applying_it(
    mongo_database,
) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            await MongoStore(db).ensure_indexes(auto_cleanup_days=30)
            wrapped = WrappedDatabase(db, CollModCollection)
            checking = MongoStore(wrapped, auto_indexes=False)
            assert await checking.ensure_indexes(auto_cleanup_days=30) == []  # all present
            with pytest.raises(StoreError, match="streamline_ttl_ended"):
                await checking.ensure_indexes(auto_cleanup_days=7)
            proxy: CollModCollection = wrapped.proxy
            assert not proxy.named(*_INDEX_OPS) and proxy.database.commands == []
            _, created = await checking.create(make_run())  # the core indexes are there
            assert created

    asyncio.run(scenario())


def test_index_builds_carry_the_commit_quorum(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            wrapped = WrappedDatabase(db, RecordingCollection)
            await MongoStore(wrapped, commit_quorum="majority").ensure_indexes()
            builds = wrapped.proxy.named("create_index")
            assert builds and all(c.kwargs.get("commitQuorum") == "majority" for c in builds)

    asyncio.run(scenario())
