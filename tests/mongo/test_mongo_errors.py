"""Every driver error becomes a streamline_core error; nothing from pymongo escapes."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
from bson.errors import BSONError, InvalidBSON, InvalidDocument
from mongo_support import T0, WF, FailingCollection, WrappedDatabase, make_run
from pymongo import AsyncMongoClient
from pymongo.errors import (
    AutoReconnect,
    ConfigurationError,
    CursorNotFound,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
    WorkflowError,
)
from streamline_core.store import RunQuery
from streamline_mongo import MongoStore

Expected = type[WorkflowError] | tuple[type[WorkflowError], ...]

ERRORS: list[tuple[BaseException, Expected]] = [
    (AutoReconnect("connection reset"), StoreUnavailableError),
    (NetworkTimeout("timed out"), StoreUnavailableError),
    (ServerSelectionTimeoutError("no primary"), StoreUnavailableError),
    (NotPrimaryError("not primary"), StoreUnavailableError),
    (ExecutionTimeout("maxTimeMS", code=50), StoreUnavailableError),
    (WTimeoutError("waiting for replication", code=64), StoreUnavailableError),
    (WriteConcernError("write concern", code=100), StoreUnavailableError),
    (OperationFailure("not authorized", code=13), StoreError),
    # A duplicate key is a lost race on create; on a transition only a user's
    # own unique index can raise it, which is no race: ValidationError.
    (OperationFailure("E11000 duplicate key", code=11000), (ConflictError, ValidationError)),
    (DuplicateKeyError("E11000 duplicate key", code=11000), (ConflictError, ValidationError)),
    (InvalidOperation("cannot use client after close"), StoreUnavailableError),
    (ConfigurationError("bad option"), StoreUnavailableError),
    (CursorNotFound("cursor id not found", code=43), StoreUnavailableError),
    (PyMongoError("anything else"), StoreUnavailableError),
    (InvalidDocument("cannot encode object"), ValidationError),
    (InvalidBSON("bad bytes"), DataCorruptionError),
]

Operation = Callable[[MongoStore], Awaitable[object]]

OPERATIONS: dict[str, Operation] = {
    "create": lambda s: s.create(make_run()),
    "create_keyed": lambda s: s.create(make_run(idempotency_key="k")),
    "get": lambda s: s.get("r1"),
    "claim": lambda s: s.claim("w", T0, 30, 5, {WF}),
    "transition": lambda s: s.transition("r1", 0, {"status": "done"}),
    "heartbeat": lambda s: s.heartbeat("r1", "w", T0, 30),
    "find": lambda s: s.find(RunQuery()),
    "count": lambda s: s.count(RunQuery()),
    "delete": lambda s: s.delete(RunQuery(status="done")),
    "ensure_indexes": lambda s: s.ensure_indexes(auto_cleanup_days=1),
}


def _check(
    exc: BaseException, expected: Expected, original: BaseException, where: str = ""
) -> None:
    assert isinstance(exc, expected), f"{where}: {type(exc).__name__}: {exc}"
    if expected is StoreError:  # a permanent refusal is never reported as transient
        assert not isinstance(exc, StoreUnavailableError), f"{where}: {exc}"
    assert not isinstance(exc, PyMongoError | BSONError)
    assert str(exc)  # a readable message
    assert exc.__cause__ is original  # kept for debugging


def _name(expected: Expected) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    return "|".join(t.__name__ for t in types)


@pytest.mark.parametrize(
    ("error", "expected"), ERRORS, ids=[f"{type(e).__name__}-{_name(x)}" for e, x in ERRORS]
)
def test_every_operation_translates_driver_errors(mongo_database, error, expected) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            for name, operation in OPERATIONS.items():
                store = MongoStore(WrappedDatabase(db, partial(FailingCollection, error=error)))
                with pytest.raises(WorkflowError) as caught:
                    await operation(store)
                _check(caught.value, expected, error, where=name)

    asyncio.run(scenario())


@pytest.mark.parametrize("name", ["insert_one", "find_one_and_update", "find", "find_one"])
def test_errors_past_the_index_check_are_translated_too(mongo_database, name) -> None:
    # The calls after the lazy index check (the ones a failing first call hides).
    error = AutoReconnect("connection reset")

    async def scenario() -> None:
        async with mongo_database() as db:
            seeded = MongoStore(db)
            run, _ = await seeded.create(make_run())
            only = frozenset({name})
            store = MongoStore(
                WrappedDatabase(db, partial(FailingCollection, error=error, only=only))
            )
            await store.ensure_indexes()
            attempts: list[Operation] = [
                lambda s: s.create(make_run()),
                lambda s: s.create(run),  # duplicate id -> follow-up reads
                lambda s: s.claim("w", T0, 30, 5, {WF}),
                lambda s: s.transition(run.id, run.revision + 1, {"status": "done"}),
                lambda s: s.heartbeat(run.id, "w", T0, 30),
                lambda s: s.find(RunQuery()),
            ]
            failures = 0
            for attempt in attempts:
                try:
                    await attempt(store)
                except StoreUnavailableError as exc:
                    _check(exc, StoreUnavailableError, error)
                    failures += 1
                except WorkflowError:
                    pass  # the operation's own answer (conflict, lease lost)
            assert failures >= 1

    asyncio.run(scenario())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_store_unavailable() -> None:
    async def scenario() -> None:
        url = f"mongodb://127.0.0.1:{_closed_port()}/app"
        client: AsyncMongoClient[dict] = AsyncMongoClient(url, serverSelectionTimeoutMS=50)
        try:
            store = MongoStore(client["app"])
            with pytest.raises(StoreUnavailableError) as caught:
                await store.get("r1")
            assert isinstance(caught.value.__cause__, ServerSelectionTimeoutError)
            with pytest.raises(StoreUnavailableError):
                await store.create(make_run())
        finally:
            await client.close()

    asyncio.run(scenario())


def test_a_value_bson_cannot_hold_is_a_validation_error(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            with pytest.raises(ValidationError):
                await store.create(make_run(input={"x": object()}))
            with pytest.raises(ValidationError, match="64 bits"):
                await store.create(make_run(context={"big": 2**70}))
            with pytest.raises(ValidationError, match="not a string"):
                await store.create(make_run(input={1: "x"}))
            run, _ = await store.create(make_run())
            with pytest.raises(ValidationError):
                await store.transition(run.id, run.revision, {"context.k": object()})
            with pytest.raises(ValidationError):
                await store.transition(run.id, run.revision, {"context.k": -(2**64)})
            assert await store.get(run.id) == run

    asyncio.run(scenario())


def test_a_corrupt_document_is_data_corruption(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            await store.collection.insert_one({"_id": "bad", "workflow_id": WF, "status": 42})
            with pytest.raises(DataCorruptionError):
                await store.get("bad")
            with pytest.raises(DataCorruptionError):
                await store.find(RunQuery())

    asyncio.run(scenario())


def test_a_corrupt_claimed_run_stays_leased_and_the_valid_ones_are_handed_over(
    mongo_store,
) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            bad, _ = await store.create(make_run(priority=10))
            good = [(await store.create(make_run()))[0] for _ in range(3)]
            await store.collection.update_one({"_id": bad.id}, {"$set": {"steps": "garbage"}})
            with pytest.raises(DataCorruptionError) as caught:
                await store.claim("w", T0, 30, 10, {WF})
            assert caught.value.run_id == bad.id
            assert sorted(r.id for r in caught.value.claimed) == sorted(r.id for r in good)
            assert all(r.lease is not None and r.lease.owner == "w" for r in caught.value.claimed)
            raw = await store.collection.find_one({"_id": bad.id})
            assert raw["lease"]["owner"] == "w"  # no other worker spins on it
            assert await store.claim("w2", T0, 30, 10, {WF}) == []

    asyncio.run(scenario())


def test_a_corrupt_run_uses_up_a_claim_slot(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            bad, _ = await store.create(make_run(priority=10))
            await store.create(make_run())
            await store.collection.update_one({"_id": bad.id}, {"$set": {"steps": "garbage"}})
            with pytest.raises(DataCorruptionError) as caught:
                await store.claim("w", T0, 30, 1, {WF})
            assert caught.value.claimed == []
            assert len(await store.claim("w", T0, 30, 1, {WF})) == 1

    asyncio.run(scenario())
