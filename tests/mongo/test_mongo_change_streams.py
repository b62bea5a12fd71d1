"""``wait_for_work`` on MongoDB: change streams wake idle workers, polling is the fallback.

mongomock has no change streams, and no replica set runs here, so these
tests watch through :class:`WatchingCollection`, a proxy whose ``watch``
serves events that its own writes publish (the stream's ``$match`` is
evaluated by mongomock's filter code). A live replica set is not exercised
here (``STREAMLINE_TEST_MONGO_URL`` runs the rest of the suite on one).
Timeouts are real seconds (``wait_for_work`` waits on the event loop), kept
to a few hundredths.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from mongo_support import T0, ChangeFeed, WatchingCollection, WrappedDatabase, make_run
from pymongo.errors import AutoReconnect, OperationFailure

import streamline_mongo._wakeups as wakeups
from streamline_core.run import Lease
from streamline_mongo import MongoStore

SHORT = 0.05


def _stores(db: Any, feed: ChangeFeed) -> tuple[MongoStore, MongoStore]:
    """A waiting worker's store and another process's, on one collection."""
    wrap = partial(WatchingCollection, feed=feed)
    return MongoStore(WrappedDatabase(db, wrap)), MongoStore(WrappedDatabase(db, wrap))


async def _stream_open(feed: ChangeFeed) -> None:
    for _ in range(100):
        if feed.streams:
            return
        await asyncio.sleep(0)
    raise AssertionError("the store never opened a change stream")


@pytest.fixture(autouse=True)
def _quick_reopen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wakeups, "_BACKOFF_FIRST", 0.001)


def test_a_due_run_written_elsewhere_wakes_the_waiter(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            feed = ChangeFeed(server_now=T0)
            waiter, other = _stores(db, feed)
            waiting = asyncio.ensure_future(waiter.wait_for_work(5))
            await _stream_open(feed)
            await other.create(make_run(next_run_at=T0))
            assert await asyncio.wait_for(waiting, 1) is True
            await waiter.close()
            assert feed.streams == []  # close() closes the stream

    asyncio.run(scenario())


def test_writes_that_leave_no_run_due_do_not_wake(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            feed = ChangeFeed(server_now=T0)
            waiter, other = _stores(db, feed)
            assert await waiter.wait_for_work(SHORT) is False  # opens the stream, nothing came
            leased = Lease(owner="w1", expires_at=T0 + timedelta(seconds=30))
            await other.create(make_run(lease=leased))  # leased: not claimable
            await other.create(make_run(next_run_at=T0 + timedelta(hours=1)))  # not due yet
            await other.create(make_run(paused=True))
            assert await waiter.wait_for_work(SHORT) is False
            assert feed.watch_calls == 1
            await waiter.close()

    asyncio.run(scenario())


def test_a_released_run_wakes_the_waiter(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            feed = ChangeFeed(server_now=T0)
            waiter, other = _stores(db, feed)
            await other.create(make_run(id="r1"))
            (claimed,) = await other.claim("w1", T0, 30, 1, {"wf"})
            assert await waiter.wait_for_work(SHORT) is False  # the claim leased it
            await other.transition("r1", claimed.revision, {"lease": None}, owner="w1")
            assert await waiter.wait_for_work(1) is True
            await waiter.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "refusal",
    [
        OperationFailure("The $changeStream stage is only supported on replica sets", 40573),
        OperationFailure("command not supported", 115),
    ],
    ids=["standalone", "not-supported"],
)
def test_a_server_without_change_streams_falls_back_to_polling(
    mongo_database, refusal: Exception
) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            feed = ChangeFeed(server_now=T0)
            feed.refuse_watch = refusal
            waiter, other = _stores(db, feed)
            assert await waiter.wait_for_work(SHORT) is False
            for _ in range(10):
                await asyncio.sleep(0)
            await other.create(make_run())
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await waiter.wait_for_work(SHORT) is False
            assert loop.time() - started >= SHORT * 0.9  # it sleeps its timeout: no busy loop
            assert feed.watch_calls == 1  # never tried again
            await waiter.close()

    asyncio.run(scenario())


def test_mongomock_without_watch_falls_back_to_polling(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            assert await store.wait_for_work(SHORT) is False
            assert await store.wait_for_work(SHORT) is False

    asyncio.run(scenario())


def test_a_broken_stream_is_reopened(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            feed = ChangeFeed(server_now=T0)
            waiter, other = _stores(db, feed)
            assert await waiter.wait_for_work(SHORT) is False
            feed.break_streams(AutoReconnect("primary stepped down"))
            for _ in range(200):
                if feed.watch_calls == 2 and feed.streams:
                    break
                await asyncio.sleep(0.001)
            assert feed.watch_calls == 2
            await other.create(make_run())
            assert await waiter.wait_for_work(1) is True
            await waiter.close()

    asyncio.run(scenario())


def test_a_waiter_can_be_cancelled(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            feed = ChangeFeed(server_now=T0)
            waiter, _ = _stores(db, feed)
            waiting = asyncio.ensure_future(waiter.wait_for_work(5))
            await _stream_open(feed)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await waiter.close()

    asyncio.run(scenario())
