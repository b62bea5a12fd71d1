"""Run documents written by earlier releases stay readable, and go on, with this code.

``tests/fixtures/<release>/`` holds an SQLite file and raw Mongo documents
written by that release (see ``tests/fixtures/make_stored_runs.py``). Each is
read with the current stores: every field the release stored reads back as it
did then (fields added since take their defaults), and the runs left waiting,
sleeping, retrying or under a dead worker's lease finish under today's engine.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streamline_core import Engine, RunStatus, WorkflowRun
from streamline_core.store import Store
from streamline_testing import FakeClock
from tests.fixtures.make_stored_runs import define

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RELEASES = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.json").exists())


def expected(release: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / release / "expected.json").read_text())
    return data


def differences(stored: Any, now: Any, path: str = "run") -> list[str]:
    """Where ``now`` differs from ``stored``, ignoring keys added since (at any depth)."""
    if isinstance(stored, dict) and isinstance(now, dict):
        return [d for k, v in stored.items() for d in differences(v, now.get(k), f"{path}.{k}")]
    if isinstance(stored, list) and isinstance(now, list) and len(stored) == len(now):
        return [
            d
            for i, (a, b) in enumerate(zip(stored, now, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    return [] if stored == now else [f"{path}: stored {stored!r}, read {now!r}"]


def same_as_stored(run: WorkflowRun, stored: dict[str, Any]) -> None:
    changed = differences(stored, run.model_dump(mode="json"))
    assert not changed, changed


async def sqlite_store(release: str, tmp_path: Path) -> Store:
    from streamline_sqlite import SQLiteStore

    copy = tmp_path / "runs.sqlite"
    shutil.copy(FIXTURES / release / "runs.sqlite", copy)  # opening may migrate it
    return SQLiteStore(str(copy))


async def mongo_store(release: str, tmp_path: Path) -> Store:
    from bson import json_util
    from mongomock_motor import AsyncMongoMockClient

    from streamline_mongo import MongoStore

    store = MongoStore(AsyncMongoMockClient(tz_aware=True)["fixtures"])
    # As the server gives them back to a tz_aware client: BSON dates are UTC.
    options = json_util.JSONOptions(tz_aware=True, tzinfo=UTC)
    docs = json_util.loads(
        (FIXTURES / release / "mongo-runs.json").read_text(), json_options=options
    )
    # Indexes first, as on a live deployment (mongomock also ignores a partial
    # index's filter when it builds the index over documents already there).
    await store.ensure_indexes()
    await store.collection.insert_many(docs)
    return store


OPENERS = {"sqlite": sqlite_store, "mongo": mongo_store}


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("backend", sorted(OPENERS))
async def test_stored_runs_read_back_as_they_were_written(
    release: str, backend: str, tmp_path: Path
) -> None:
    want = expected(release)[backend]
    store = await OPENERS[backend](release, tmp_path)
    try:
        for name, run_id in want["ids"].items():
            run = await store.get(run_id)
            assert run is not None, name
            same_as_stored(run, want["runs"][name])
    finally:
        await store.close()


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("backend", sorted(OPENERS))
async def test_stored_runs_finish_under_this_engine(
    release: str, backend: str, tmp_path: Path
) -> None:
    ids = expected(release)[backend]["ids"]
    store = await OPENERS[backend](release, tmp_path)
    clock = FakeClock(datetime(2026, 12, 1, 12, 0, 5, tzinfo=UTC))
    engine = Engine(store, clock=clock, load_entry_point_plugins=False)
    wfs = define(engine)
    try:
        async with engine:
            assert await engine.emit_event("paid", {"amount": 3}) >= 1
            # The paused run records the event; its wait was its last step, so it is done.
            hook = await engine.runs.get(ids["waiting_hook"])
            assert hook is not None and hook.status == RunStatus.WAITING
            await wfs["hook"].resume(ids["waiting_hook"], {"approved": True})
            for _ in range(8):  # the sleep, the retries and the dead worker's lease pass
                await clock.advance(1800)
            ends = {}
            for name in ("waiting_event", "paused", "waiting_hook", "sleeping", "retrying"):
                ends[name] = await engine.get_workflow(
                    (await engine.runs.get(ids[name])).workflow_id  # type: ignore[union-attr]
                ).wait_for(ids[name], timeout=30)
            leased = await engine.runs.get(ids["leased"])
    finally:
        await store.close()
    assert ends["waiting_event"].status == RunStatus.DONE
    assert ends["waiting_event"].output == {"amount": 3}
    assert ends["paused"].output == {"amount": 3}
    assert ends["waiting_hook"].output == {"approved": True}
    assert ends["sleeping"].status == RunStatus.DONE
    assert leased is not None
    assert leased.status == RunStatus.WAITING  # recovered, then waits for its event
    assert leased.recoveries == 1 and leased.lease is None
    assert ends["retrying"].status == RunStatus.FAILED  # five attempts, then it gives up
    assert ends["retrying"].steps[1].attempts == 5
