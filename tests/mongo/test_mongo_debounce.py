"""Debounce races on Mongo: starts from two engines (and a claim) really interleaved.

Each engine's store talks through a :class:`YieldingCollection`, so the
starts' creates and compare-and-sets interleave (``InFlight.most > 1``).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from mongo_support import T0, InFlight, WrappedDatabase, YieldingCollection

from streamline_core import Debounce, Engine
from streamline_core._runtime.debouncing import not_begun
from streamline_core.run import RunStatus
from streamline_core.store import RunQuery
from streamline_mongo import MongoStore
from streamline_testing import FakeClock

ACTIVE = (RunStatus.RUNNING, RunStatus.WAITING)


def _engines(db: Any, tracker: InFlight, clock: FakeClock) -> list[Engine]:
    return [
        Engine(
            MongoStore(WrappedDatabase(db, partial(YieldingCollection, tracker=tracker))),
            clock=clock,
            load_entry_point_plugins=False,
        )
        for _ in range(2)
    ]


def test_racing_debounced_starts_from_two_engines_make_one_run(mongo_database: Any) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            overlap, clock = InFlight(), FakeClock(start=T0)
            engines = _engines(db, overlap, clock)
            wfs = [
                e.workflow("sync", steps={"s": lambda ctx: 1}, debounce=Debounce(10))
                for e in engines
            ]
            runs = await asyncio.gather(*(wfs[n % 2].start({"n": n}) for n in range(10)))
            assert overlap.most > 1
            assert len({r.id for r in runs}) == 1
            assert await MongoStore(db).count(RunQuery(status=ACTIVE)) == 1

    asyncio.run(scenario())


def test_starts_racing_a_claim_never_leave_two_pending_runs(mongo_database: Any) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            overlap, clock = InFlight(), FakeClock(start=T0)
            engines = _engines(db, overlap, clock)
            wfs = [
                e.workflow("sync", steps={"s": lambda ctx: 1}, debounce=Debounce(10))
                for e in engines
            ]
            await wfs[0].start({"n": -1})
            await clock.advance(10)
            claimer = MongoStore(WrappedDatabase(db, partial(YieldingCollection, tracker=overlap)))
            results = await asyncio.gather(
                *(wfs[n % 2].start({"n": n}) for n in range(6)),
                claimer.claim("w", clock.now(), 30, 10, {"sync"}),
            )
            claimed = results[-1]
            assert overlap.most > 1
            page = await MongoStore(db).find(RunQuery(status=ACTIVE, limit=None))
            pending = [r for r in page.items if not_begun(r)]
            assert len(pending) <= 1
            assert len(claimed) <= 1
            assert len(page.items) == len(pending) + len(claimed)

    asyncio.run(scenario())
