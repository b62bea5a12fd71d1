"""The engine's hot path on MongoDB: one find_one_and_update per committed step."""

from __future__ import annotations

import asyncio
from typing import Any

from mongo_support import RecordingCollection, WrappedDatabase

from streamline_core import Engine, RunStatus, StepContext
from streamline_mongo import MongoStore


async def noop(ctx: StepContext) -> None:
    return None


def test_a_ten_step_run_costs_one_insert_and_ten_find_one_and_updates(mongo_database: Any) -> None:
    async def scenario() -> None:
        async with mongo_database() as db:
            wrapped = WrappedDatabase(db, RecordingCollection)
            store = MongoStore(wrapped)
            engine = Engine(store, load_entry_point_plugins=False)
            wf = engine.workflow("ten", steps={f"s{i}": noop for i in range(10)})
            async with engine:
                run = await wf.start()
                done = await wf.wait_for(run.id, timeout=10)
            await store.close()
            assert done.status == RunStatus.DONE
            calls = wrapped.proxy.calls
            writes = [
                c.name
                for c in calls
                if c.name in ("insert_one", "find_one_and_update", "update_one", "replace_one")
            ]
            assert writes.count("insert_one") == 1
            assert writes.count("find_one_and_update") == 10
            assert len(writes) == 11
            for call in wrapped.proxy.named("find_one_and_update"):
                update = call.args[1] if len(call.args) > 1 else call.kwargs["update"]
                assert set(update) <= {"$set", "$unset", "$inc"}  # never a whole-document rewrite

    asyncio.run(scenario())
