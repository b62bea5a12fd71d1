"""MongoStore keeps each clause of the Store contract (streamline_core.store)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from mongo_support import T0, WF, make_run

from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    LeaseLostError,
    WorkflowNotFoundError,
)
from streamline_core.run import RunStatus
from streamline_core.store import UNSET, RunQuery

LATER = T0 + timedelta(seconds=30)


def test_create_then_get_round_trips_the_run(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run = make_run(input={"url": "https://x"}, meta={"user": "u1"}, priority=3)
            stored, created = await store.create(run)
            assert created and stored == run
            assert await store.get(run.id) == run
            assert await store.get("nope") is None

    asyncio.run(scenario())


def test_creating_an_existing_id_is_a_conflict(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run = make_run()
            await store.create(run)
            with pytest.raises(ConflictError):
                await store.create(run.model_copy(update={"input": 2}))
            assert (await store.get(run.id)) == run

    asyncio.run(scenario())


def test_idempotent_create_returns_the_active_holder(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            first, created = await store.create(make_run(idempotency_key="k"))
            again, created_again = await store.create(make_run(idempotency_key="k"))
            assert created and not created_again and again == first
            # The key is scoped by workflow and tenant.
            _, other_wf = await store.create(make_run(idempotency_key="k", workflow_id="wf2"))
            _, other_tenant = await store.create(make_run(idempotency_key="k", tenant_id="t1"))
            _, no_key = await store.create(make_run())
            assert other_wf and other_tenant and no_key
            # Once the holder is terminal, the key is free again.
            await store.transition(first.id, first.revision, {"status": "done"})
            fresh, created_fresh = await store.create(make_run(idempotency_key="k"))
            assert created_fresh and fresh.id != first.id

    asyncio.run(scenario())


def test_a_terminal_run_with_a_held_key_is_not_inserted(mongo_store) -> None:
    # The partial unique index does not cover terminal runs; the contract
    # still says: an active holder of the key wins, nothing is inserted.
    async def scenario() -> None:
        async with mongo_store() as store:
            holder, _ = await store.create(make_run(idempotency_key="k"))
            got, created = await store.create(make_run(idempotency_key="k", status="done"))
            assert not created and got == holder
            _, created_free = await store.create(make_run(idempotency_key="free", status="done"))
            assert created_free
            assert await store.count(RunQuery()) == 2

    asyncio.run(scenario())


def test_bringing_an_ended_run_back_never_fails_on_its_key(mongo_store) -> None:
    # Transitions have no idempotency rule: rewinding an ended run whose key
    # another active run now holds must succeed (as in the in-memory store),
    # and a later create then finds an active holder.
    async def scenario() -> None:
        async with mongo_store() as store:
            old, _ = await store.create(make_run(idempotency_key="k"))
            ended = await store.transition(old.id, old.revision, {"status": "done"})
            new, created = await store.create(make_run(idempotency_key="k"))
            assert created
            back = await store.transition(old.id, ended.revision, {"status": "running"})
            assert back.status == RunStatus.RUNNING
            holder, created_again = await store.create(make_run(idempotency_key="k"))
            assert not created_again and holder.id in {old.id, new.id}
            # Once both have ended the key is free again.
            for run in (back, await store.get(new.id)):
                assert run is not None
                await store.transition(run.id, run.revision, {"status": "failed"})
            _, free = await store.create(make_run(idempotency_key="k"))
            assert free

    asyncio.run(scenario())


def test_the_empty_string_is_an_idempotency_key_too(mongo_store) -> None:
    # As in the in-memory store: only None means "no key".
    async def scenario() -> None:
        async with mongo_store() as store:
            first, _ = await store.create(make_run(idempotency_key=""))
            again, created = await store.create(make_run(idempotency_key=""))
            assert not created and again.id == first.id

    asyncio.run(scenario())


def test_claim_is_exclusive_while_the_lease_is_live(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run())
            (first,) = await store.claim("a", T0, 30, 10, {WF})
            assert first.lease is not None and first.lease.owner == "a"
            assert first.lease.expires_at == LATER and first.revision == run.revision + 1
            assert await store.claim("b", LATER - timedelta(milliseconds=1), 30, 10, {WF}) == []
            (taken,) = await store.claim("b", LATER, 30, 10, {WF})
            assert taken.lease is not None and taken.lease.owner == "b"
            assert taken.recoveries == 1 and taken.revision == first.revision + 1

    asyncio.run(scenario())


def test_taking_over_a_waiting_run_is_not_a_recovery(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run(status="waiting"))
            await store.claim("a", T0, 30, 1, {WF})
            (taken,) = await store.claim("b", LATER, 30, 1, {WF})
            assert taken.recoveries == 0 and taken.lease is not None
            assert taken.lease.owner == "b"
            # A released lease (lease None) is not a takeover either.
            released = await store.transition(run.id, taken.revision, {"lease": None})
            (again,) = await store.claim("c", LATER, 30, 1, {WF})
            assert again.recoveries == 0 and again.revision == released.revision + 1

    asyncio.run(scenario())


def test_unclaimable_runs_are_never_claimed(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            for status in ("done", "failed", "cancelled"):
                await store.create(make_run(status=status))
            await store.create(make_run(paused=True))
            await store.create(make_run(next_run_at=T0 + timedelta(seconds=1)))
            await store.create(make_run(next_run_at=None))
            await store.create(make_run(workflow_id="other"))
            await store.create(make_run(tenant_id="t2"))
            live = make_run(lease={"owner": "x", "expires_at": T0 + timedelta(seconds=1)})
            await store.create(live)
            claimed = await store.claim("w", T0, 30, 100, {WF}, tenant_id="t1")
            assert claimed == []
            # Without the tenant scope only the tenant-t2 run is claimable.
            (only,) = await store.claim("w", T0, 30, 100, {WF})
            assert only.tenant_id == "t2"
            assert await store.claim("w", T0, 30, 0, {WF}) == []
            assert await store.claim("w", T0, 30, 10, set()) == []

    asyncio.run(scenario())


def test_draft_runs_are_claimable(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run(status="draft"))
            assert [r.id for r in await store.claim("w", T0, 30, 1, {WF})] == [run.id]

    asyncio.run(scenario())


def test_claim_order_is_priority_then_due_time_then_id(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            early = make_run(next_run_at=T0 - timedelta(seconds=10))
            late = make_run(next_run_at=T0 - timedelta(seconds=5))
            urgent = make_run(priority=5, next_run_at=T0)
            tie_a = make_run(id="0TIE-A", next_run_at=T0)
            tie_b = make_run(id="0TIE-B", next_run_at=T0)
            for run in (tie_b, late, urgent, tie_a, early):
                await store.create(run)
            claimed = await store.claim("w", T0, 30, 4, {WF})
            assert [r.id for r in claimed] == [urgent.id, early.id, late.id, tie_a.id]
            rest = await store.claim("w2", T0, 30, 4, {WF})
            assert [r.id for r in rest] == [tie_b.id]

    asyncio.run(scenario())


def test_transition_is_a_compare_and_set(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run())
            (claimed,) = await store.claim("a", T0, 30, 1, {WF})
            with pytest.raises(ConflictError):  # stale revision
                await store.transition(run.id, run.revision, {"status": "done"})
            with pytest.raises(ConflictError):  # foreign owner
                await store.transition(run.id, claimed.revision, {"status": "done"}, owner="b")
            with pytest.raises(WorkflowNotFoundError):
                await store.transition("missing", 0, {"status": "done"})
            assert (await store.get(run.id)) == claimed
            done = await store.transition(
                run.id, claimed.revision, {"status": "done", "ended_at": LATER}, owner="a"
            )
            assert done.status == RunStatus.DONE and done.ended_at == LATER
            assert done.revision == claimed.revision + 1
            assert await store.get(run.id) == done

    asyncio.run(scenario())


def test_transition_with_owner_needs_a_lease(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run())
            with pytest.raises(ConflictError):
                await store.transition(run.id, run.revision, {"status": "done"}, owner="a")

    asyncio.run(scenario())


def test_an_expired_lease_nobody_took_over_still_commits(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run())
            (claimed,) = await store.claim("a", T0, 30, 1, {WF})
            moved = await store.transition(
                run.id, claimed.revision, {"current_step_id": "b"}, owner="a"
            )
            assert moved.current_step_id == "b"
            # ...but once another worker takes over, the old owner is fenced.
            (taken,) = await store.claim("b", LATER, 30, 1, {WF})
            with pytest.raises(ConflictError):
                await store.transition(run.id, moved.revision, {"status": "done"}, owner="a")
            with pytest.raises(ConflictError):
                await store.transition(run.id, taken.revision, {"status": "done"}, owner="a")

    asyncio.run(scenario())


def test_patch_paths_reach_steps_and_dict_keys(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run(context={"keep": 1, "drop": 2}, meta={"m": 1}))
            step = {"step_id": "b", "status": "done", "attempts": 1, "output": {"n": 1}}
            after = await store.transition(
                run.id,
                run.revision,
                {
                    "steps.1": step,
                    "steps.0.status": "done",
                    "context.total": 3,
                    "context.drop": UNSET,
                    "meta.m": UNSET,
                },
            )
            assert after.steps[1].output == {"n": 1} and after.steps[1].attempts == 1
            assert after.steps[0].status == "done" and after.steps[0].step_id == "a"
            assert after.context == {"keep": 1, "total": 3} and after.meta == {}
            assert await store.get(run.id) == after

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "patch",
    [
        {"status": "exploded"},
        {"steps.0.attempts": "many"},
        {"steps.7.status": "done"},
        {"steps.2": {"step_id": "c"}},
        {"steps.1": UNSET},
        {"created_at": UNSET},
        {"revision": 99},
        {"status.x": 1},
    ],
    ids=lambda p: next(iter(p)),
)
def test_a_patch_that_would_corrupt_the_run_writes_nothing(mongo_store, patch) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run())
            with pytest.raises(DataCorruptionError):
                await store.transition(run.id, run.revision, patch)
            assert await store.get(run.id) == run
            # The usual errors still come first, as in every store.
            with pytest.raises(WorkflowNotFoundError):
                await store.transition("missing", 0, patch)
            with pytest.raises(ConflictError):
                await store.transition(run.id, run.revision + 5, patch)

    asyncio.run(scenario())


def test_heartbeat_extends_only_the_owners_lease_without_a_revision(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run())
            with pytest.raises(LeaseLostError):  # no lease at all
                await store.heartbeat(run.id, "a", T0, 30)
            (claimed,) = await store.claim("a", T0, 30, 1, {WF})
            status = await store.heartbeat(run.id, "a", T0 + timedelta(seconds=20), 30)
            assert status == RunStatus.RUNNING
            after = await store.get(run.id)
            assert after is not None and after.revision == claimed.revision
            assert after.lease is not None
            assert after.lease.expires_at == T0 + timedelta(seconds=50)
            # The extended lease holds off a takeover at the old expiry.
            assert await store.claim("b", LATER, 30, 1, {WF}) == []
            with pytest.raises(LeaseLostError):
                await store.heartbeat(run.id, "b", T0, 30)
            with pytest.raises(LeaseLostError):
                await store.heartbeat("missing", "a", T0, 30)

    asyncio.run(scenario())


def test_heartbeat_reports_a_cancellation(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run())
            (claimed,) = await store.claim("a", T0, 30, 1, {WF})
            await store.transition(run.id, claimed.revision, {"status": "cancelled"})
            assert await store.heartbeat(run.id, "a", T0, 30) == RunStatus.CANCELLED

    asyncio.run(scenario())


def test_revisions_strictly_increase(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            run, _ = await store.create(make_run())
            seen = [run.revision]
            (claimed,) = await store.claim("a", T0, 30, 1, {WF})
            seen.append(claimed.revision)
            current = claimed
            for i in range(3):
                await store.heartbeat(run.id, "a", T0, 30)
                current = await store.transition(
                    run.id, current.revision, {f"context.k{i}": i}, owner="a"
                )
                seen.append(current.revision)
            (taken,) = await store.claim("b", T0 + timedelta(seconds=60), 30, 1, {WF})
            seen.append(taken.revision)
            assert seen == sorted(set(seen)) and seen == list(range(seen[0], seen[0] + 6))

    asyncio.run(scenario())


def test_count_and_delete_use_the_query_filters(mongo_store) -> None:
    async def scenario() -> None:
        async with mongo_store() as store:
            old = T0 - timedelta(days=40)
            keep = make_run(status="done", updated_at=T0)
            stale = [make_run(status="done", updated_at=old) for _ in range(3)]
            active = make_run(updated_at=old)
            other = make_run(status="failed", updated_at=old, workflow_id="other")
            for run in (keep, *stale, active, other):
                await store.create(run)
            cleanup = RunQuery(status=["done", "failed", "cancelled"], updated_before=T0)
            assert await store.count(cleanup) == 4
            assert await store.count(RunQuery(workflow_id=WF, limit=1)) == 5  # limit ignored
            deleted = await store.delete(RunQuery(workflow_id=WF, status="done", updated_before=T0))
            assert deleted == 3
            left = {r.id for r in (await store.find(RunQuery(limit=None))).items}
            assert left == {keep.id, active.id, other.id}

    asyncio.run(scenario())
