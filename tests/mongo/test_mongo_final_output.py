"""The final output is stored once (in the last step's record), not twice.

``run.output`` and ``steps[-1].output`` read back as before; the document
holds the value once, so the largest final output is MongoDB's 16 MB limit
rather than half of it (issue #18, item 12).
"""

from __future__ import annotations

import asyncio
from typing import Any

from mongo_support import MAX_BSON, T0, StrictCollection, WrappedDatabase, make_run

from streamline_core import Engine, RunStatus, StepContext
from streamline_core.store import RunQuery
from streamline_mongo import MongoStore
from streamline_testing import FakeClock


def _done_patch(output: Any) -> dict[str, Any]:
    return {
        "steps.1": {
            "step_id": "b",
            "status": "done",
            "attempts": 1,
            "started_at": T0,
            "ended_at": T0,
            "output": output,
            "error": None,
            "wait": None,
        },
        "status": "done",
        "output": output,
        "ended_at": T0,
        "current_step_id": None,
        "lease": None,
        "next_run_at": None,
    }


def test_the_final_output_is_written_once_and_read_back_whole(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run(id="r1"))
            output = {"rows": [1, 2, 3], "note": "final"}
            done = await store.transition("r1", run.revision, _done_patch(output))
            assert done.output == output and done.steps[1].output == output
            raw = await store.collection.find_one({"_id": "r1"})
            assert "output" not in raw and raw["output_of_step"] == 1
            stored = await store.get("r1")
            assert stored is not None and stored.output == output
            (listed,) = (await store.find(RunQuery())).items
            assert listed.output == output

    asyncio.run(scenario())


def test_an_output_that_is_not_the_last_steps_is_stored_as_given(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run(id="r1"))
            done = await store.transition("r1", run.revision, _done_patch("final"))
            # A rewind clears the output; a later output of its own is stored as given.
            cleared = await store.transition("r1", done.revision, {"output": None})
            assert cleared.output is None
            raw = await store.collection.find_one({"_id": "r1"})
            assert "output_of_step" not in raw
            again = await store.transition("r1", cleared.revision, {"output": {"own": 1}})
            assert again.output == {"own": 1} and again.steps[1].output == "final"

    asyncio.run(scenario())


def test_a_final_output_over_half_the_limit_fits(mongo_database) -> None:
    big = "x" * (MAX_BSON * 5 // 8)  # 10 MB: twice over the limit if stored twice

    async def last(ctx: StepContext) -> str:
        return big

    async def scenario() -> None:
        async with mongo_database() as db:
            store = MongoStore(WrappedDatabase(db, StrictCollection))
            engine = Engine(store, clock=FakeClock(start=T0))
            wf = engine.workflow("big-final", steps={"a": lambda ctx: 1, "b": last})
            await engine.start()
            try:
                run = await wf.start()
                done = await wf.wait_for(run.id, timeout=30)
            finally:
                await engine.shutdown()
            assert done.status == RunStatus.DONE, done.error
            assert done.output == big and done.steps[1].output == big
            stored = await store.get(run.id)
            assert stored is not None and stored.output == big

    asyncio.run(scenario())
