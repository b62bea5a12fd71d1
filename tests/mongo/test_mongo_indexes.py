"""Index creation: lazy core indexes, ensure_indexes, idempotent re-runs."""

from __future__ import annotations

import asyncio

import pytest
from mongo_support import T0, WF, RecordingCollection, WrappedDatabase, make_run
from pymongo.errors import DuplicateKeyError

from streamline_mongo import MongoStore

CORE = {
    "streamline_idempotency_held",
    "streamline_idempotency_lookup",
    "streamline_claim_free",
    "streamline_claim_expired",
    "streamline_tenant_status",
    "streamline_wait_event",
    "streamline_hook",
    "streamline_parent",
    "streamline_slot",
    "streamline_rate_slot",
}
LISTING = {
    "streamline_created_id",
    "streamline_updated_id",
    "streamline_workflow_created_id",
    "streamline_workflow_status_created_id",
    "streamline_status_updated_id",
}


def _keys(info: dict, name: str) -> list[tuple[str, int]]:
    return [(k, int(d)) for k, d in info[name]["key"]]


def test_core_indexes_exist_before_the_first_insert_and_are_checked_once(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            wrapped = WrappedDatabase(db, RecordingCollection)
            store = MongoStore(wrapped)
            rec = wrapped.proxy
            await store.create(make_run())
            names = [c.name for c in rec.calls]
            assert names.index("index_information") < names.index("insert_one")
            assert max(i for i, n in enumerate(names) if n == "create_index") < names.index(
                "insert_one"
            )
            await store.create(make_run())
            await store.claim("w", T0, 30, 1, {WF})
            assert [c.name for c in rec.calls].count("index_information") == 1
            info = await store.collection.index_information()
            assert set(info) >= CORE
            idem = info["streamline_idempotency_held"]
            assert _keys(info, "streamline_idempotency_held") == [
                ("workflow_id", 1),
                ("tenant_id", 1),
                ("idempotency_key", 1),
            ]
            assert idem["unique"] is True
            # Equality only: no $in (FCV 6.0, refused by DocumentDB), no
            # $exists/$type (mis-handled by mongomock).
            assert dict(idem["partialFilterExpression"]) == {"holds_idempotency_key": True}
            assert _keys(info, "streamline_claim_free") == [
                ("lease", 1),
                ("priority", -1),
                ("next_run_at", 1),
                ("_id", 1),
            ]
            assert dict(info["streamline_claim_free"]["partialFilterExpression"]) == {
                "is_active": True
            }
            assert _keys(info, "streamline_claim_expired") == [("lease.expires_at", 1)]

    asyncio.run(scenario())


def test_a_claim_alone_also_creates_the_core_indexes(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            await store.claim("w", T0, 30, 1, {WF})
            assert set(await store.collection.index_information()) >= CORE

    asyncio.run(scenario())


def test_ensure_indexes_creates_everything_asked_for(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            created = await store.ensure_indexes(
                tenant_field="tenantId",
                user_field="userId",
                context_fields=("url", "orderId"),
                auto_cleanup_days=30,
            )
            info = await store.collection.index_information()
            extra = {
                "streamline_tenant_tenantId",
                "streamline_user_userId",
                "streamline_context_url",
                "streamline_context_orderId",
                "streamline_ttl_ended",
            }
            assert set(created) == CORE | LISTING | extra
            assert set(info) == CORE | LISTING | extra | {"_id_"}
            assert _keys(info, "streamline_tenant_status") == [("tenant_id", 1), ("status", 1)]
            assert _keys(info, "streamline_tenant_tenantId") == [
                ("context.tenantId", 1),
                ("status", 1),
            ]
            assert _keys(info, "streamline_user_userId") == [
                ("context.userId", 1),
                ("created_at", -1),
            ]
            assert _keys(info, "streamline_context_url") == [("context.url", 1)]
            ttl = info["streamline_ttl_ended"]
            assert _keys(info, "streamline_ttl_ended") == [("ended_at", 1)]
            assert int(ttl["expireAfterSeconds"]) == 30 * 86400
            assert dict(ttl["partialFilterExpression"]) == {"is_active": False}
            assert _keys(info, "streamline_created_id") == [("created_at", -1), ("_id", -1)]
            assert _keys(info, "streamline_workflow_created_id") == [
                ("workflow_id", 1),
                ("created_at", -1),
                ("_id", -1),
            ]

    asyncio.run(scenario())


def test_ensure_indexes_again_is_harmless(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store = MongoStore(db)
            options = {"tenant_field": "tenantId", "context_fields": ["url"]}
            await store.create(make_run(idempotency_key="k"))
            await store.ensure_indexes(**options, auto_cleanup_days=7)
            # Runs with the same key in terminal states, then the indexes again:
            # mongomock would raise a false DuplicateKeyError if the partial
            # unique index were created a second time.
            for _ in range(2):
                await store.create(make_run(idempotency_key="k2", status="done"))
            before = await store.collection.index_information()
            assert await store.ensure_indexes(**options, auto_cleanup_days=7) == []
            assert await store.collection.index_information() == before
            # A second store on the same collection sees them all and creates nothing.
            other = MongoStore(db)
            assert await other.ensure_indexes(**options, auto_cleanup_days=7) == []
            _, created = await other.create(make_run(idempotency_key="k"))
            assert not created

    asyncio.run(scenario())


def test_a_changed_cleanup_period_replaces_the_ttl_index(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            await store.ensure_indexes(auto_cleanup_days=30)
            assert await store.ensure_indexes(auto_cleanup_days=7) == ["streamline_ttl_ended"]
            info = await store.collection.index_information()
            assert int(info["streamline_ttl_ended"]["expireAfterSeconds"]) == 7 * 86400
            # Not asking for cleanup leaves an existing TTL index alone.
            assert await store.ensure_indexes() == []
            assert "streamline_ttl_ended" in await store.collection.index_information()

    asyncio.run(scenario())


def test_an_index_the_user_already_has_is_not_created_twice(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            await store.collection.create_index([("context.url", 1)], name="my_url_index")
            created = await store.ensure_indexes(context_fields=["url"])
            assert "streamline_context_url" not in created

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "options",
    [
        {"auto_cleanup_days": 0},
        {"tenant_field": ""},
        {"user_field": "$where"},
        {"context_fields": "url"},
    ],
)
def test_ensure_indexes_rejects_bad_options(mongo_store, options) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            with pytest.raises((ValueError, TypeError)):
                await store.ensure_indexes(**options)

    asyncio.run(scenario())


def test_the_partial_unique_index_binds_only_active_key_holders(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            await store.ensure_indexes()
            raw = store.collection
            held = {
                "is_active": True,
                "workflow_id": WF,
                "tenant_id": None,
                "idempotency_key": "k",
                "holds_idempotency_key": True,
            }
            # The store unsets the marker when a run ends, so ended runs and
            # runs brought back to life are outside the index.
            not_held = {**held, "status": "running"}
            del not_held["holds_idempotency_key"]
            ended = {**not_held, "is_active": False}
            await raw.insert_one({"_id": "d1", **ended, "status": "done"})
            await raw.insert_one({"_id": "d2", **ended, "status": "failed"})
            await raw.insert_one({"_id": "n1", **not_held})
            await raw.insert_one({"_id": "n2", **not_held})
            await raw.insert_one({"_id": "a1", **held, "status": "running"})
            with pytest.raises(DuplicateKeyError):
                await raw.insert_one({"_id": "a2", **held, "status": "waiting"})

    asyncio.run(scenario())
