"""What a real MongoDB server (and PyMongo) does that mongomock hides (issue #18),
and values matched as values, never as operators (issue #16).

Most tests run the store on :class:`StrictCollection`, a proxy over
mongomock-motor that enforces the server's limits, error codes and decoding;
each one failed on the store before these fixes.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from mongo_support import (
    T0,
    WF,
    FailingCollection,
    FailNth,
    StrictCollection,
    WrappedDatabase,
    make_run,
)
from pymongo import AsyncMongoClient
from pymongo.errors import (
    AutoReconnect,
    DocumentTooLarge,
    OperationFailure,
    WriteConcernError,
)

from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from streamline_core.store import RunQuery
from streamline_mongo import MongoStore, from_url

MB = 1024 * 1024


def _strict(db: Any) -> tuple[MongoStore, StrictCollection]:
    wrapped = WrappedDatabase(db, StrictCollection)
    store = MongoStore(wrapped)
    return store, wrapped.proxy


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"n": value}
    return value


# 1 and 12: permanent refusals are not transient -------------------------------------


def test_a_commit_over_16_mb_is_a_validation_error_saying_so(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, _ = _strict(db)
            run, _ = await store.create(make_run())
            # PyMongo refuses the command itself (DocumentTooLarge)...
            with pytest.raises(ValidationError, match="16 MB"):
                await store.transition(run.id, run.revision, {"context.blob": "x" * (17 * MB)})
            # ...and the server refuses an update whose result grows past it (17419).
            half = await store.transition(run.id, run.revision, {"context.a": "x" * (9 * MB)})
            with pytest.raises(ValidationError, match="16 MB"):
                await store.transition(run.id, half.revision, {"context.b": "y" * (9 * MB)})
            assert await store.get(run.id) == half  # nothing was written

    asyncio.run(scenario())


def test_a_create_over_16_mb_is_a_validation_error(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, _ = _strict(db)
            with pytest.raises(ValidationError, match="16 MB"):
                await store.create(make_run(input="x" * (17 * MB)))

    asyncio.run(scenario())


def test_nesting_deeper_than_100_is_a_validation_error(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, _ = _strict(db)
            with pytest.raises(ValidationError, match="nested deeper"):
                await store.create(make_run(input=_nested(120)))
            run, _ = await store.create(make_run())
            with pytest.raises(ValidationError, match="nested deeper"):
                await store.transition(run.id, run.revision, {"context.deep": _nested(120)})

    asyncio.run(scenario())


CLASSIFIED: list[tuple[BaseException, type[Exception]]] = [
    (OperationFailure("BSONObjectTooLarge", code=10334), ValidationError),
    (OperationFailure("Resulting document after update is larger", code=17419), ValidationError),
    (OperationFailure("exceeds maximum nesting depth", code=15), ValidationError),
    (OperationFailure("would create a conflict", code=40), DataCorruptionError),
    (OperationFailure("Cannot create field", code=28), DataCorruptionError),
    (OperationFailure("not authorized", code=13), StoreError),
    (OperationFailure("CannotCreateIndex", code=67), StoreError),
    (OperationFailure("IndexOptionsConflict", code=85), StoreError),
    (OperationFailure("IndexKeySpecsConflict", code=86), StoreError),
    (OperationFailure("something new", code=999999), StoreError),
    (OperationFailure("not writable primary", code=10107), StoreUnavailableError),
    (OperationFailure("stepped down", code=189), StoreUnavailableError),
    (
        OperationFailure("unknown", code=999999, details={"errorLabels": ["RetryableWriteError"]}),
        StoreUnavailableError,
    ),
    (
        OperationFailure("x", code=999998, details={"errorLabels": ["TransientTransactionError"]}),
        StoreUnavailableError,
    ),
    (DocumentTooLarge("BSON document too large"), ValidationError),
]


@pytest.mark.parametrize(
    ("error", "expected"),
    CLASSIFIED,
    ids=[f"{getattr(e, 'code', type(e).__name__)}-{x.__name__}" for e, x in CLASSIFIED],
)
def test_server_errors_are_classified_by_code_and_label(mongo_database, error, expected) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            seeded = MongoStore(db)
            run, _ = await seeded.create(make_run())
            only = frozenset({"find_one_and_update"})
            store = MongoStore(
                WrappedDatabase(db, partial(FailingCollection, error=error, only=only))
            )
            with pytest.raises(Exception) as caught:
                await store.transition(run.id, run.revision, {"context.k": 1})
            assert type(caught.value) is expected, caught.value
            assert caught.value.__cause__ is error
            if expected is StoreError:
                assert "not" in str(caught.value) and "transient" in str(caught.value)

    asyncio.run(scenario())


def test_overlapping_update_paths_are_a_patch_error(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, _ = _strict(db)
            run, _ = await store.create(make_run())
            with pytest.raises(DataCorruptionError, match="overlap"):
                await store.transition(run.id, run.revision, {"context": {}, "context.k": 1})

    asyncio.run(scenario())


# 2: a failing claim keeps the runs it already leased -------------------------------


def test_a_claim_failing_part_way_returns_the_runs_it_leased(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            seeded = MongoStore(db)
            for _ in range(3):
                await seeded.create(make_run())
            await seeded.ensure_indexes()
            failure = OperationFailure("shutting down", code=91)
            wrapped = WrappedDatabase(
                db, partial(FailNth, name="find_one_and_update", nth=2, error=failure)
            )
            claimed = await MongoStore(wrapped).claim("w", T0, 30, 3, {WF})
            assert len(claimed) == 1 and claimed[0].lease is not None
            stored = await seeded.get(claimed[0].id)
            assert stored == claimed[0]
            # The other two are still claimable.
            assert len(await seeded.claim("w2", T0, 30, 3, {WF})) == 2

    asyncio.run(scenario())


def test_a_claim_whose_lease_answer_was_lost_still_returns_that_run(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            seeded = MongoStore(db)
            run, _ = await seeded.create(make_run())
            await seeded.ensure_indexes()
            wrapped = WrappedDatabase(
                db,
                partial(
                    FailNth,
                    name="find_one_and_update",
                    nth=1,
                    error=AutoReconnect("connection reset"),
                    applied=True,
                ),
            )
            (claimed,) = await MongoStore(wrapped).claim("w", T0, 30, 3, {WF})
            assert claimed.id == run.id and claimed.lease is not None

    asyncio.run(scenario())


def test_a_claim_failing_before_any_lease_raises(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            await MongoStore(db).create(make_run())
            failure = OperationFailure("shutting down", code=91)
            wrapped = WrappedDatabase(
                db, partial(FailNth, name="find_one_and_update", nth=1, error=failure)
            )
            with pytest.raises(StoreUnavailableError):
                await MongoStore(wrapped).claim("w", T0, 30, 3, {WF})

    asyncio.run(scenario())


# 3: lost answers -------------------------------------------------------------------

LOST = [
    AutoReconnect("connection reset after sending"),
    WriteConcernError("waiting for replication timed out", code=64),
]


@pytest.mark.parametrize("error", LOST, ids=lambda e: type(e).__name__)
def test_a_transition_whose_answer_was_lost_returns_the_stored_run(mongo_database, error) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, strict = _strict(db)
            run, _ = await store.create(make_run())
            (claimed,) = await store.claim("w", T0, 30, 1, {WF})
            strict.lose_answer["find_one_and_update"] = error
            after = await store.transition(run.id, claimed.revision, {"context.k": 1}, owner="w")
            assert after.revision == claimed.revision + 1 and after.context == {"k": 1}
            assert await store.get(run.id) == after

    asyncio.run(scenario())


def test_a_retried_transition_whose_first_answer_was_lost_is_recognised(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, strict = _strict(db)
            run, _ = await store.create(make_run())
            (claimed,) = await store.claim("w", T0, 30, 1, {WF})
            strict.lose_answer["find_one_and_update"] = AutoReconnect("reset")
            strict.lose_answer["find_one"] = AutoReconnect("still down")  # the re-read fails too
            with pytest.raises(StoreUnavailableError):
                await store.transition(run.id, claimed.revision, {"context.k": 1}, owner="w")
            # The engine retries the same commit: it was applied, so it is no conflict.
            again = await store.transition(run.id, claimed.revision, {"context.k": 1}, owner="w")
            assert again.revision == claimed.revision + 1
            # A stale write by someone else is still a conflict.
            with pytest.raises(ConflictError):
                await store.transition(run.id, claimed.revision, {"context.k": 2})

    asyncio.run(scenario())


@pytest.mark.parametrize("error", LOST, ids=lambda e: type(e).__name__)
def test_a_create_whose_answer_was_lost_is_created(mongo_database, error) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, strict = _strict(db)
            await store.ensure_indexes()
            strict.lose_answer["insert_one"] = error
            run = make_run(idempotency_key="k")
            stored, created = await store.create(run)
            assert created and stored == run
            assert await store.count(RunQuery()) == 1

    asyncio.run(scenario())


# 6: another event loop -------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_store_used_from_a_second_event_loop_raises_a_store_error() -> None:
    url = f"mongodb://127.0.0.1:{_closed_port()}/app"

    async def make() -> tuple[AsyncMongoClient[Any], MongoStore]:
        client: AsyncMongoClient[Any] = AsyncMongoClient(url, serverSelectionTimeoutMS=50)
        return client, MongoStore(client["app"])

    async def use(store: MongoStore) -> BaseException:
        with pytest.raises(StoreError) as caught:
            await store.get("r1")
        return caught.value

    _client, store = asyncio.run(make())
    assert isinstance(asyncio.run(use(store)), StoreUnavailableError)  # first loop: unreachable
    other = asyncio.run(use(store))
    assert not isinstance(other, StoreUnavailableError)
    assert "event loop" in str(other)


# 7: BSON's own types are normalised on read ---------------------------------------


def test_dbref_shaped_values_and_int64_read_back_as_written(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, _ = _strict(db)
            ref = {"$ref": "users", "$id": "u1"}
            run, _ = await store.create(make_run(context={"owner": ref, "big": 2**40}))
            for got in (await store.get(run.id), (await store.find(RunQuery())).items[0]):
                assert got is not None
                assert got.context == {"owner": ref, "big": 2**40}
                assert type(got.context["owner"]) is dict and type(got.context["big"]) is int

    asyncio.run(scenario())


# 9 and 13: a user's own unique index ---------------------------------------------


def test_a_users_unique_index_refusing_a_transition_is_a_validation_error(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            await store.collection.create_index([("context.email", 1)], unique=True, sparse=True)
            one, _ = await store.create(make_run(context={"email": "a@x"}))
            two, _ = await store.create(make_run(context={"email": "b@x"}))
            with pytest.raises(ValidationError, match="unique index"):
                await store.transition(two.id, two.revision, {"context.email": "a@x"})
            assert await store.get(one.id) == one

    asyncio.run(scenario())


@pytest.mark.parametrize("keyed", [False, True])
def test_a_users_unique_index_refusing_a_create_is_a_validation_error(mongo_store, keyed) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            await store.collection.create_index([("meta.order", 1)], unique=True, sparse=True)
            key = {"idempotency_key": "k1"} if keyed else {}
            await store.create(make_run(meta={"order": 1}, **key))
            other = {"idempotency_key": "k2"} if keyed else {}
            with pytest.raises(ValidationError, match="unique index"):
                await store.create(make_run(meta={"order": 1}, **other))

    asyncio.run(scenario())


# 11: the collection named in the URL ------------------------------------------------


def test_from_url_takes_the_collection_from_the_path() -> None:
    async def scenario() -> None:
        store = from_url("mongodb://localhost:27017/app.runs?appname=x")
        try:
            assert repr(store) == "MongoStore(app.runs)"
            assert store.collection.database.client.options.timeout == 10.0
        finally:
            await store.close()
        with pytest.raises(ValidationError, match="collection"):
            from_url("mongodb://localhost:27017/app.runs", collection="other")

    asyncio.run(scenario())


# auto_indexes=False -----------------------------------------------------------------


def test_auto_indexes_false_only_checks_and_says_what_is_missing(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            checking = MongoStore(db, auto_indexes=False)
            with pytest.raises(StoreError, match="streamline_claim_free") as caught:
                await checking.create(make_run())
            assert not isinstance(caught.value, StoreUnavailableError)
            assert await db.get_collection("workflow_runs").index_information() == {}
            await MongoStore(db).ensure_indexes()
            _, created = await MongoStore(db, auto_indexes=False).create(make_run())
            assert created

    asyncio.run(scenario())


def test_runs_written_before_the_active_marker_are_still_claimed(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            raw = db.get_collection("workflow_runs")
            old = MongoStore(db)
            run, _ = await old.create(make_run())
            await raw.update_one({"_id": run.id}, {"$unset": {"is_active": ""}})
            for name in ("streamline_claim_free", "streamline_claim_expired"):
                await raw.drop_index(name)
            upgraded = MongoStore(db)
            (claimed,) = await upgraded.claim("w", T0, 30, 1, {WF})
            assert claimed.id == run.id

    asyncio.run(scenario())


# issue #16: values are values ----------------------------------------------------


def test_filter_values_are_matched_as_values_never_as_operators(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            for user in ("u1", "u2"):
                await store.create(make_run(meta={"user": user}, context={"user": user}))
            for operator in ({"$ne": "x"}, {"$gt": ""}, {"$regex": "."}, {"$exists": True}):
                for query in (
                    RunQuery(meta={"user": operator}),
                    RunQuery(context={"user": operator}),
                ):
                    assert (await store.find(query)).items == []
                    assert await store.count(query) == 0
                    assert await store.delete(query) == 0
            with pytest.raises(ValidationError):  # an id or name must be a string
                await store.count(RunQuery(tenant_id={"$ne": None}))  # type: ignore[arg-type]
            with pytest.raises(ValidationError):
                await store.count(RunQuery(meta={"$where": "1"}))
            assert await store.count(RunQuery()) == 2

    asyncio.run(scenario())


def test_run_ids_that_are_not_strings_are_refused(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run())
            evil: Any = {"$ne": None}
            with pytest.raises(ValidationError):
                await store.get(evil)
            with pytest.raises(ValidationError):
                await store.transition(evil, 0, {"status": "cancelled"})
            with pytest.raises(ValidationError):
                await store.heartbeat(evil, "w", T0, 30)
            with pytest.raises(ValidationError):
                await store.find(RunQuery(run_ids=[evil]))
            assert await store.get(run.id) == run

    asyncio.run(scenario())


def test_lone_surrogates_are_validation_errors(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, _ = _strict(db)
            with pytest.raises(ValidationError, match="UTF-8"):
                await store.create(make_run(input="\ud800"))
            run, _ = await store.create(make_run())
            with pytest.raises(ValidationError, match="UTF-8"):
                await store.transition(run.id, run.revision, {"context.k": "\ud800"})
            with pytest.raises(ValidationError, match="UTF-8"):
                await store.find(RunQuery(meta={"k": "\udfff"}))
            with pytest.raises(ValidationError, match="UTF-8"):
                await store.get("\ud800")

    asyncio.run(scenario())


def test_heartbeats_are_bounded_by_a_third_of_the_lease(mongo_database) -> None:
    import pymongo

    seen: list[float | None] = []

    class Watching(FailingCollection):
        async def before(self, name: str, args: Any, kwargs: Any) -> None:
            from pymongo import _csot

            seen.append(_csot.get_timeout())

    async def scenario() -> None:
        async with mongo_database() as db:
            store = MongoStore(
                WrappedDatabase(db, partial(Watching, error=RuntimeError(), only=frozenset()))
            )
            run, _ = await store.create(make_run())
            await store.claim("w", T0, 30, 1, {WF})
            seen.clear()
            await store.heartbeat(run.id, "w", T0 + timedelta(seconds=1), 30)
            assert seen and seen[-1] is not None and 9 < seen[-1] <= 10

    assert pymongo.timeout is not None
    asyncio.run(scenario())
