"""Races: idempotent starts, competing claims and commits.

mongomock-motor never yields to the event loop, so every store here talks
through a :class:`YieldingCollection` that awaits ``asyncio.sleep(0)`` around
each call; ``InFlight.most > 1`` proves the calls really interleaved.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from functools import partial

from mongo_support import T0, WF, InFlight, WrappedDatabase, YieldingCollection, make_run

from streamline_core.errors import ConflictError, LeaseLostError
from streamline_core.run import RunStatus
from streamline_core.store import RunQuery
from streamline_mongo import MongoStore


def _yielding_store(db, tracker: InFlight) -> MongoStore:
    return MongoStore(WrappedDatabase(db, partial(YieldingCollection, tracker=tracker)))


def test_ten_concurrent_idempotent_starts_make_one_run(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            overlap = InFlight()
            store = _yielding_store(db, overlap)
            results = await asyncio.gather(
                *(store.create(make_run(idempotency_key="order-1")) for _ in range(10))
            )
            assert overlap.most > 1
            assert sum(created for _, created in results) == 1
            assert len({run.id for run, _ in results}) == 1
            assert await store.count(RunQuery()) == 1

    asyncio.run(scenario())


def test_idempotent_starts_race_across_two_stores(mongo_database) -> None:
    # Two stores on one database stand for two processes; neither has
    # created the indexes before the race starts.
    async def scenario() -> None:
        async with mongo_database() as db:
            overlap = InFlight()
            one, two = _yielding_store(db, overlap), _yielding_store(db, overlap)
            results = await asyncio.gather(
                *(
                    (one if i % 2 else two).create(make_run(idempotency_key="k", tenant_id="t"))
                    for i in range(10)
                )
            )
            assert overlap.most > 1
            assert sum(created for _, created in results) == 1
            assert len({run.id for run, _ in results}) == 1
            assert await one.count(RunQuery()) == 1

    asyncio.run(scenario())


def test_competing_claims_never_hand_a_run_to_two_workers(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            seed = MongoStore(db)
            runs = [make_run(priority=i % 3) for i in range(20)]
            for run in runs:
                await seed.create(run)
            overlap = InFlight()
            stores = [_yielding_store(db, overlap) for _ in range(8)]
            batches = await asyncio.gather(
                *(store.claim(f"w{i}", T0, 30, 5, {WF}) for i, store in enumerate(stores))
            )
            assert overlap.most > 1
            claimed = Counter(run.id for batch in batches for run in batch)
            assert claimed and max(claimed.values()) == 1
            for i, batch in enumerate(batches):
                assert len(batch) <= 5
                for run in batch:
                    stored = await seed.get(run.id)
                    assert stored is not None and stored.lease is not None
                    assert stored.lease.owner == f"w{i}" == run.lease.owner
                    assert stored.revision == run.revision
            # Whatever was not claimed in the race is still claimable, once.
            rest = await seed.claim("late", T0, 30, 100, {WF})
            assert {r.id for r in rest}.isdisjoint(claimed)
            assert len(rest) + len(claimed) == len(runs)

    asyncio.run(scenario())


def test_concurrent_commits_on_one_revision_let_exactly_one_win(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            overlap = InFlight()
            store = _yielding_store(db, overlap)
            run, _ = await store.create(make_run())
            (claimed,) = await store.claim("w", T0, 30, 1, {WF})
            outcomes = await asyncio.gather(
                *(
                    store.transition(run.id, claimed.revision, {"context.who": i}, owner="w")
                    for i in range(10)
                ),
                return_exceptions=True,
            )
            assert overlap.most > 1
            wins = [o for o in outcomes if not isinstance(o, BaseException)]
            losses = [o for o in outcomes if isinstance(o, BaseException)]
            assert len(wins) == 1 and all(isinstance(o, ConflictError) for o in losses)
            stored = await store.get(run.id)
            assert stored == wins[0] and stored.revision == claimed.revision + 1

    asyncio.run(scenario())


def test_a_takeover_racing_a_heartbeat_leaves_one_owner(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            store = _yielding_store(db, InFlight())
            run, _ = await store.create(make_run())
            await store.claim("old", T0, 30, 1, {WF})
            at_expiry = T0 + timedelta(seconds=30)
            beat, taken = await asyncio.gather(
                store.heartbeat(run.id, "old", at_expiry, 30),
                store.claim("new", at_expiry, 30, 1, {WF}),
                return_exceptions=True,
            )
            stored = await store.get(run.id)
            assert stored is not None and stored.lease is not None
            if taken:  # the takeover won: the old owner's heartbeat is refused
                assert isinstance(beat, LeaseLostError)
                assert stored.lease.owner == "new" and stored.recoveries == 1
            else:  # the heartbeat won: the lease is alive again, no takeover
                assert beat == RunStatus.RUNNING
                assert stored.lease.owner == "old" and stored.recoveries == 0

    asyncio.run(scenario())
