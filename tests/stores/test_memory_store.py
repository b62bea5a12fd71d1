"""InMemoryStore basics (the full contract is checked by the conformance suite)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from streamline_core.errors import ConflictError, LeaseLostError
from streamline_core.run import RunStatus, WorkflowRun, new_run_id
from streamline_testing import FakeClock, InMemoryStore

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _run(**kw: object) -> WorkflowRun:
    base: dict[str, object] = {
        "id": new_run_id(),
        "workflow_id": "wf",
        "created_at": T0,
        "updated_at": T0,
        "next_run_at": T0,
    }
    base.update(kw)
    return WorkflowRun.model_validate(base)


def test_claim_is_exclusive_while_the_lease_is_live() -> None:
    async def scenario() -> None:
        store = InMemoryStore()
        await store.create(_run())
        first = await store.claim("a", T0, 30, 10, {"wf"})
        second = await store.claim("b", T0 + timedelta(seconds=29), 30, 10, {"wf"})
        third = await store.claim("b", T0 + timedelta(seconds=30), 30, 10, {"wf"})
        assert len(first) == 1 and second == [] and len(third) == 1
        assert third[0].recoveries == 1 and third[0].lease is not None
        assert third[0].lease.owner == "b"

    asyncio.run(scenario())


def test_transition_fences_stale_revisions_and_foreign_owners() -> None:
    async def scenario() -> None:
        store = InMemoryStore()
        run, _ = await store.create(_run())
        (claimed,) = await store.claim("a", T0, 30, 1, {"wf"})
        with pytest.raises(ConflictError):
            await store.transition(run.id, run.revision, {"status": "done"})
        with pytest.raises(ConflictError):
            await store.transition(run.id, claimed.revision, {"status": "done"}, owner="b")
        done = await store.transition(run.id, claimed.revision, {"status": "done"}, owner="a")
        assert done.status == RunStatus.DONE and done.revision == claimed.revision + 1
        with pytest.raises(LeaseLostError):
            await store.heartbeat(run.id, "b", T0, 30)

    asyncio.run(scenario())


def test_fake_clock_wakes_sleepers_in_order_without_real_waiting() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        woke: list[str] = []

        async def sleeper(name: str, secs: float) -> None:
            await clock.sleep(secs)
            woke.append(f"{name}@{(clock.now() - T0).total_seconds():.0f}")

        tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("b", 20), ("a", 10))]
        await clock.advance(5)
        assert woke == []
        await clock.advance(3600)
        assert woke == ["a@10", "b@20"]
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
