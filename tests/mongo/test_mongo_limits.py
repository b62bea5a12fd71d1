"""claim_limited on MongoDB under real interleaving: several clients, one bucket.

Every store talks through a :class:`YieldingCollection` (mongomock-motor never
yields on its own); ``InFlight.most > 1`` proves the calls interleaved.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

from mongo_support import T0, WF, InFlight, WrappedDatabase, YieldingCollection, make_run

from streamline_mongo import MongoStore

LEASE = 30.0


def _yielding_store(db, tracker: InFlight) -> MongoStore:
    return MongoStore(WrappedDatabase(db, partial(YieldingCollection, tracker=tracker)))


def test_four_clients_racing_claims_never_exceed_the_slots(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            overlap = InFlight()
            stores = [_yielding_store(db, overlap) for _ in range(4)]
            for i in range(12):
                key = "a" if i % 2 else "b"
                await stores[0].create(
                    make_run(concurrency_key=key, concurrency_limit=2, next_run_at=T0)
                )
            now = T0
            for _ in range(6):  # claim, finish some, claim again, and let leases expire
                got = await asyncio.gather(
                    *(s.claim_limited(f"w{i}", now, LEASE, 3, [WF]) for i, s in enumerate(stores))
                )
                runs = [r for batch in got for r in batch]
                every = await stores[0].collection.find({}).to_list(None)
                for key in ("a", "b"):
                    live = [
                        d
                        for d in every
                        if d.get("concurrency_key") == key
                        and d.get("lease")
                        and d["lease"]["expires_at"].replace(tzinfo=now.tzinfo) > now
                    ]
                    assert len(live) <= 2, (key, [d["_id"] for d in live])
                for r in runs[:1]:  # one finishes and gives its slot back
                    await stores[1].transition(
                        r.id, r.revision, {"lease": None, "status": "done"}, owner=r.lease.owner
                    )
                now += timedelta(seconds=LEASE / 2)
            assert overlap.most > 1

    asyncio.run(scenario())


def test_a_token_taken_over_while_its_holder_is_reclaimed_goes_to_one_run(mongo_database) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            overlap = InFlight()
            one, two = _yielding_store(db, overlap), _yielding_store(db, overlap)
            first = make_run(concurrency_key="k", concurrency_limit=1, next_run_at=T0)
            await one.create(first)
            (held,) = await one.claim_limited("w1", T0, LEASE, 1, [WF])
            # It suspends: no lease, but it still carries its slot token.
            await one.transition(held.id, held.revision, {"lease": None}, owner="w1")
            await one.create(make_run(concurrency_key="k", concurrency_limit=1, next_run_at=T0))
            results = await asyncio.gather(
                one.claim_limited("w1", T0, LEASE, 5, [WF]),
                two.claim_limited("w2", T0, LEASE, 5, [WF]),
            )
            assert sum(len(r) for r in results) == 1, results

    asyncio.run(scenario())
