"""Lease expiry judged by the server's clock (``$$NOW``), so a fast worker clock steals nothing.

mongomock has no ``$$NOW``; :class:`StrictCollection` evaluates the claim's
``$expr`` against its own ``server_now``, playing the server's clock.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from mongo_support import T0, WF, StrictCollection, WrappedDatabase, make_run

from streamline_core.errors import ValidationError
from streamline_mongo import MongoStore

LEASE = 30.0
AHEAD = timedelta(seconds=60)


def _store(db: Any, **options: Any) -> tuple[MongoStore, StrictCollection]:
    wrapped = WrappedDatabase(db, partial(StrictCollection, server_now=T0))
    return MongoStore(wrapped, **options), wrapped.proxy


def test_a_worker_whose_clock_runs_ahead_does_not_steal_a_fresh_lease(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, server = _store(db, lease_clock="server")
            assert store.lease_clock == "server"
            await store.create(make_run(id="r1"))
            (held,) = await store.claim("w1", T0, LEASE, 1, {WF})  # lease until T0 + 30 s
            # w2's clock is 60 s ahead: by its now the lease expired 30 s ago.
            assert await store.claim("w2", T0 + AHEAD, LEASE, 1, {WF}) == []
            server.server_now = T0 + timedelta(seconds=29)
            assert await store.claim("w2", T0 + AHEAD, LEASE, 1, {WF}) == []
            # Once the lease has passed by the server's clock, it is taken over.
            server.server_now = T0 + timedelta(seconds=31)
            (taken,) = await store.claim("w2", T0 + AHEAD, LEASE, 1, {WF})
            assert taken.lease is not None and taken.lease.owner == "w2"
            assert taken.revision == held.revision + 1 and taken.recoveries == 1

    asyncio.run(scenario())


def test_by_the_callers_clock_the_same_worker_steals_it(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, _ = _store(db, lease_clock="caller")
            await store.create(make_run(id="r1"))
            await store.claim("w1", T0, LEASE, 1, {WF})
            (stolen,) = await store.claim("w2", T0 + AHEAD, LEASE, 1, {WF})
            assert stolen.lease is not None and stolen.lease.owner == "w2"

    asyncio.run(scenario())


def test_a_claimer_whose_clock_lags_takes_a_lease_the_server_sees_expired(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, server = _store(db, lease_clock="server")
            await store.create(make_run(id="r1"))
            await store.claim("w1", T0, LEASE, 1, {WF})
            server.server_now = T0 + timedelta(seconds=31)
            # Its own now says the lease has 29 s left; the server says it passed.
            (taken,) = await store.claim("w2", T0 + timedelta(seconds=1), LEASE, 1, {WF})
            assert taken.lease is not None and taken.lease.owner == "w2"

    asyncio.run(scenario())


def test_mongomock_judges_by_the_callers_clock_unless_told(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            assert store.lease_clock == "caller"  # mongomock has no $$NOW

    asyncio.run(scenario())


def test_use_caller_clock_switches_and_bad_values_are_refused(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            default, _ = _store(db)
            assert default.lease_clock == "caller"  # the proxy wraps mongomock: no $$NOW
            with pytest.raises(ValidationError, match="lease_clock"):
                MongoStore(db, lease_clock="database")  # type: ignore[arg-type]
            server_store, _ = _store(db, lease_clock="server")
            server_store.use_caller_clock()
            assert server_store.lease_clock == "caller"

    asyncio.run(scenario())


def test_an_engine_on_a_fake_clock_makes_its_store_judge_by_the_engine(mongo_database) -> None:
    from streamline_core import Engine
    from streamline_testing import FakeClock

    async def scenario() -> None:
        async with mongo_database() as db:
            store, _ = _store(db, lease_clock="server")
            engine = Engine(store, clock=FakeClock(start=T0))
            engine.workflow(WF, steps={"a": lambda ctx: 1})
            await engine.start()
            try:
                assert store.lease_clock == "caller"
            finally:
                await engine.shutdown()

    asyncio.run(scenario())


def test_a_heartbeat_renews_by_the_servers_clock(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, server = _store(db, lease_clock="server")
            await store.create(make_run(id="r1"))
            await store.claim("w1", T0, LEASE, 1, {WF})
            server.server_now = T0 + timedelta(seconds=20)
            # w1's clock lags 60 s: by its now + 30 s the lease would already have passed.
            assert await store.heartbeat("r1", "w1", T0 - AHEAD, LEASE) == "running"
            renewed = await store.get("r1")
            assert renewed is not None and renewed.lease is not None
            assert renewed.lease.expires_at == T0 + timedelta(seconds=50)
            server.server_now = T0 + timedelta(seconds=49)
            assert await store.claim("w2", T0 + AHEAD, LEASE, 1, {WF}) == []

    asyncio.run(scenario())


def test_by_the_callers_clock_a_heartbeat_renews_from_its_now(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store, _ = _store(db, lease_clock="caller")
            await store.create(make_run(id="r1"))
            await store.claim("w1", T0, LEASE, 1, {WF})
            await store.heartbeat("r1", "w1", T0 + timedelta(seconds=20), LEASE)
            renewed = await store.get("r1")
            assert renewed is not None and renewed.lease is not None
            assert renewed.lease.expires_at == T0 + timedelta(seconds=50)

    asyncio.run(scenario())
