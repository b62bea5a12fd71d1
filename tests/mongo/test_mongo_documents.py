"""The stored document shape, and the exact update documents the store sends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

from mongo_support import T0, WF, RecordingCollection, WrappedDatabase, make_run

from streamline_core.run import WorkflowRun
from streamline_core.store import UNSET
from streamline_mongo import MongoStore


def test_document_shape_is_id_as_underscore_id_and_snake_case(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run = make_run(meta={"user": "u1"}, lease={"owner": "w", "expires_at": T0})
            await store.create(run)
            doc = await store.collection.find_one({"_id": run.id})
            assert doc is not None
            assert next(iter(doc)) == "_id" and "id" not in doc
            # The model's fields, plus the store's own markers (readers ignore them).
            store_fields = {"is_active", "write_id"}
            assert set(doc) == (set(WorkflowRun.model_fields) - {"id"}) | {"_id"} | store_fields
            assert doc["is_active"] is True and isinstance(doc["write_id"], str)
            assert all(key == key.lower() for key in doc)  # snake_case, no camelCase
            # Enums are stored as plain strings, nested models as sub-documents.
            assert type(doc["status"]) is str and doc["status"] == "running"
            assert type(doc["steps"][0]["status"]) is str
            assert doc["steps"][0]["step_id"] == "a"
            assert doc["lease"]["owner"] == "w" and doc["meta"] == {"user": "u1"}
            assert doc["created_at"] == T0

    asyncio.run(scenario())


def test_only_an_active_keyed_run_carries_the_key_hold_marker(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            keyed, _ = await store.create(make_run(idempotency_key="k"))
            plain, _ = await store.create(make_run())
            ended, _ = await store.create(make_run(idempotency_key="e", status="done"))
            raw = store.collection
            assert (await raw.find_one({"_id": keyed.id}))["holds_idempotency_key"] is True
            for run in (plain, ended):
                assert "holds_idempotency_key" not in await raw.find_one({"_id": run.id})
            # The marker never reaches the model, and ending the run removes it.
            assert await store.get(keyed.id) == keyed
            await store.transition(keyed.id, keyed.revision, {"status": "cancelled"})
            assert "holds_idempotency_key" not in await raw.find_one({"_id": keyed.id})

    asyncio.run(scenario())


def test_datetimes_are_stored_as_utc_milliseconds_and_returned_as_stored(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            plus2 = timezone(timedelta(hours=2))
            precise = datetime(2030, 1, 1, 14, 0, 0, 123456, tzinfo=plus2)
            run = make_run(created_at=precise, updated_at=precise, next_run_at=precise)
            stored, _ = await store.create(run)
            expected = datetime(2030, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
            assert stored.created_at == expected and stored.created_at.utcoffset() == timedelta(0)
            assert await store.get(run.id) == stored
            later = await store.transition(run.id, stored.revision, {"updated_at": precise})
            assert later.updated_at == expected

    asyncio.run(scenario())


def test_a_client_without_tz_aware_still_yields_aware_datetimes(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database(tz_aware=False) as db:
            store = MongoStore(db)
            run, _ = await store.create(make_run())
            got = await store.get(run.id)
            assert got is not None and got.created_at.tzinfo is not None
            assert got.created_at == T0
            (claimed,) = await store.claim("w", T0, 30, 1, {WF})
            assert claimed.lease is not None and claimed.lease.expires_at.tzinfo is not None

    asyncio.run(scenario())


def _recording(db) -> tuple[MongoStore, RecordingCollection]:
    wrapped = WrappedDatabase(db, RecordingCollection)
    store = MongoStore(wrapped)
    return store, wrapped.proxy


def test_a_transition_sets_only_the_patched_paths(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, rec = _recording(db)
            run, _ = await store.create(make_run(context={"old": 1}))
            (claimed,) = await store.claim("w", T0, 30, 1, {WF})
            rec.calls.clear()
            step = {"step_id": "b", "status": "done", "output": [1, 2]}
            await store.transition(
                run.id, claimed.revision, {"steps.1": step, "context.k": "v"}, owner="w"
            )
            assert [c.name for c in rec.calls] == ["find_one_and_update"]
            (call,) = rec.calls
            filter_, update = call.args
            write_id = update["$set"].pop("write_id")
            assert isinstance(write_id, str) and write_id  # recognises a lost answer later
            assert update == {
                "$set": {"steps.1": step, "context.k": "v"},
                "$inc": {"revision": 1},
            }
            assert filter_["_id"] == run.id and filter_["revision"] == claimed.revision
            assert filter_["lease.owner"] == "w"
            # The element the patch addresses must exist (no null padding).
            assert filter_["steps.1.step_id"] == {"$gte": ""}

    asyncio.run(scenario())


def test_unset_becomes_dollar_unset_and_datetimes_are_normalised(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, rec = _recording(db)
            run, _ = await store.create(make_run(meta={"a": 1, "b": 2}))
            rec.calls.clear()
            at = datetime(2030, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)
            await store.transition(
                run.id, run.revision, {"meta.a": UNSET, "status": "done", "ended_at": at}
            )
            (call,) = rec.named("find_one_and_update")
            assert call.args[1]["$set"].pop("write_id")
            assert call.args[1] == {
                "$set": {
                    "status": "done",
                    "ended_at": at.replace(microsecond=678000),
                    "is_active": False,  # the partial indexes' marker follows the status
                },
                # Ending a run also releases its hold on an idempotency key.
                "$unset": {"meta.a": "", "holds_idempotency_key": ""},
                "$inc": {"revision": 1},
            }
            assert type(call.args[1]["$set"]["status"]) is str

    asyncio.run(scenario())


def test_claim_leases_each_run_with_one_sorted_conditional_write(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, rec = _recording(db)
            fresh, _ = await store.create(make_run(priority=1))
            dead, _ = await store.create(
                make_run(lease={"owner": "gone", "expires_at": T0 - timedelta(seconds=1)})
            )
            rec.calls.clear()
            claimed = await store.claim("w", T0, 30, 5, {WF})
            assert [r.id for r in claimed] == [fresh.id, dead.id]
            # Two indexed reads (the few expired leases; how many free runs are
            # due), then one write per run: the free run by a sorted
            # find_one_and_update (the server picks the best one still free),
            # the expired one pinned to the revision read.
            assert [c.name for c in rec.calls] == ["find", "find"] + ["find_one_and_update"] * 2
            find, free, first, second = rec.calls
            assert find.args[0]["lease.expires_at"] == {"$lte": T0}
            assert find.kwargs["sort"] == [("priority", -1), ("next_run_at", 1), ("_id", 1)]
            lease = {"owner": "w", "expires_at": T0 + timedelta(seconds=30)}
            assert first.kwargs["sort"] == [("priority", -1), ("next_run_at", 1), ("_id", 1)]
            assert first.args[0]["lease"] is None
            claim_id = first.args[1]["$set"]["write_id"]
            assert first.args[1] == {
                "$set": {"lease": lease, "write_id": claim_id},
                "$inc": {"revision": 1},
            }
            # Taking over a dead worker's lease of a running run counts a recovery.
            assert second.args[1] == {
                "$set": {"lease": lease, "write_id": claim_id},
                "$inc": {"revision": 1, "recoveries": 1},
            }
            assert second.args[0]["_id"] == dead.id
            assert second.args[0]["revision"] == dead.revision
            assert free.args[0]["lease"] is None
            for call in (free, first, second):
                filter_ = call.args[0]
                # The claimable conditions are repeated in the write's filter.
                assert filter_["is_active"] is True
                assert filter_["status"] == {"$in": ["draft", "running", "waiting"]}
                assert filter_["next_run_at"] == {"$lte": T0}
                assert filter_["paused"] is False
                assert filter_["workflow_id"] == {"$in": [WF]}
            assert claimed[1].recoveries == 1 and claimed[0].recoveries == 0

    asyncio.run(scenario())


def test_heartbeat_moves_only_the_lease_expiry(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, rec = _recording(db)
            run, _ = await store.create(make_run())
            await store.claim("w", T0, 30, 1, {WF})
            rec.calls.clear()
            await store.heartbeat(run.id, "w", T0, 60)
            (call,) = rec.calls
            assert call.name == "find_one_and_update"
            assert call.args[0] == {"_id": run.id, "lease.owner": "w"}
            assert call.args[1] == {"$set": {"lease.expires_at": T0 + timedelta(seconds=60)}}

    asyncio.run(scenario())


def test_no_operation_rewrites_a_whole_document(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, rec = _recording(db)
            run, _ = await store.create(make_run(idempotency_key="k"))
            await store.create(make_run(idempotency_key="k"))
            (claimed,) = await store.claim("w", T0, 30, 1, {WF})
            await store.heartbeat(run.id, "w", T0, 30)
            await store.transition(run.id, claimed.revision, {"status": "done"}, owner="w")
            names = {c.name for c in rec.calls}
            assert names <= {
                "index_information",
                "create_index",
                "insert_one",
                "find_one",
                "find",
                "find_one_and_update",
                "update_many",  # the one-time is_active backfill of older runs
            }
            for call in rec.named("find_one_and_update"):
                assert all(key.startswith("$") for key in call.args[1])

    asyncio.run(scenario())
