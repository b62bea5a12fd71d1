"""Recurring schedules: cron and intervals in time zones, exactly one run per occurrence."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from streamline_core import (
    Engine,
    Recurrence,
    RunStatus,
    StepContext,
    ValidationError,
    Workflow,
    WorkflowNotFoundError,
    WorkflowRun,
    hookimpl,
)
from tests.conftest import Env

DAY = 86400.0


async def noop(ctx: StepContext) -> Any:
    return ctx.input


async def hold(ctx: StepContext) -> None:
    await ctx.wait("held open, so the run stays active")


def report(engine: Engine, *, waits: bool = False) -> Workflow:
    return engine.workflow("report", steps={"work": hold if waits else noop})


async def runs_of(engine: Engine, schedule: str) -> list[WorkflowRun]:
    page = await engine.runs.find(meta={"schedule": schedule}, limit=None, sort="created_at")
    return [r for r in page.items if r.workflow_id != "streamline.schedule"]


def fired_at(runs: list[WorkflowRun]) -> list[datetime]:
    return sorted(datetime.fromisoformat(r.meta["scheduled_for"]) for r in runs)


async def test_a_daily_berlin_schedule_fires_365_times_in_a_year_with_both_dst_days_right(
    env: Env,
) -> None:
    env.clock = type(env.clock)(datetime(2029, 12, 31, 12, tzinfo=UTC))
    async with env.engine() as engine:
        wf = report(engine)
        engine.schedule("nightly", wf, cron="30 2 * * *", timezone="Europe/Berlin")
        await env.settle()
        # A day at a time, as a year passes for a service: each day's runs land
        # before the next day begins, on every store.
        for _ in range(365):
            await env.clock.advance(DAY)
            await env.settle()
        runs = await runs_of(engine, "nightly")
    times = fired_at(runs)
    assert len(times) == 365 == len(set(times))
    assert all(r.status == RunStatus.DONE for r in runs)
    utc = Counter(t.strftime("%H:%M") for t in times)
    # Winter 02:30 CET is 01:30 UTC, summer 02:30 CEST is 00:30 UTC ...
    assert set(utc) == {"01:30", "00:30", "01:00"}
    # ... 2030-03-31 has no 02:30 (02:00 -> 03:00): it fires at the first instant after the gap.
    assert datetime(2030, 3, 31, 1, 0, tzinfo=UTC) in times
    assert utc["01:00"] == 1
    # 2030-10-27 has 02:30 twice: it fires once, at the first (CEST, 00:30 UTC).
    assert [t for t in times if t.date() == datetime(2030, 10, 27).date()] == [
        datetime(2030, 10, 27, 0, 30, tzinfo=UTC)
    ]


async def test_two_workers_and_a_restart_start_each_occurrence_exactly_once(env: Env) -> None:
    engines = [env.engine(worker_id=f"w{i}") for i in range(2)]
    for engine in engines:
        engine.schedule("poll", report(engine), every=timedelta(minutes=1), catch_up="all")
        await engine.start()
    await env.clock.advance(300)
    await engines[0].shutdown()
    again = env.engine(worker_id="w2")
    again.schedule("poll", report(again), every=60, catch_up="all")
    await again.start()
    await env.clock.advance(300)
    await env.settle()
    times = fired_at(await runs_of(again, "poll"))
    assert len(times) == 10
    assert len(set(times)) == 10
    assert [b - a for a, b in pairwise(times)] == [timedelta(minutes=1)] * 9


async def test_list_and_get_show_the_schedule(env: Env) -> None:
    async with env.engine() as engine:
        engine.schedule("nightly", report(engine), cron="0 2 * * *", timezone="Europe/Berlin")
        await env.settle()
        [info] = await engine.schedules.list()
        assert info == await engine.schedules.get("nightly")
        assert (info.name, info.workflow, info.spec, info.timezone) == (
            "nightly",
            "report",
            "0 2 * * *",
            "Europe/Berlin",
        )
        assert info.paused is False
        assert info.next_fire_at == datetime(2030, 1, 1, 1, 0, tzinfo=UTC)
        assert info.last_run_id is None
        await env.clock.advance(DAY)
        info2 = await engine.schedules.get("nightly")
        assert info2 is not None and info2.last_run_id is not None
        assert info2.next_fire_at == datetime(2030, 1, 2, 1, 0, tzinfo=UTC)
        assert await engine.schedules.get("nope") is None


async def test_a_paused_schedule_fires_nothing_and_unpausing_does_not_catch_up(env: Env) -> None:
    async with env.engine() as engine:
        engine.schedule("poll", report(engine), every=60, catch_up="all")
        await env.settle()
        paused = await engine.schedules.pause("poll")
        assert paused.paused and paused.next_fire_at is None
        await env.clock.advance(600)
        assert await runs_of(engine, "poll") == []
        await engine.schedules.unpause("poll")
        await env.settle()
        assert await runs_of(engine, "poll") == []
        await env.clock.advance(120)
        assert len(await runs_of(engine, "poll")) == 2


async def test_redeclaring_keeps_the_pause_and_updates_the_settings(env: Env) -> None:
    async with env.engine() as first:
        first.schedule("poll", report(first), every=60, input={"v": 1})
        await env.settle()
        await first.schedules.pause("poll")
    async with env.engine() as second:
        second.schedule("poll", report(second), every=60, input={"v": 2})
        await env.settle()
        info = await second.schedules.get("poll")
        assert info is not None and info.paused
        await env.clock.advance(300)
        assert await runs_of(second, "poll") == []
        await second.schedules.unpause("poll")
        await env.clock.advance(60)
        [run] = await runs_of(second, "poll")
        assert run.input == {"v": 2}


async def test_trigger_starts_one_run_now_outside_the_cadence(env: Env) -> None:
    async with env.engine() as engine:
        engine.schedule("nightly", report(engine), cron="0 2 * * *", input={"k": 1})
        await env.settle()
        run = await engine.schedules.trigger("nightly")
        assert run.meta == {
            "schedule": "nightly",
            "scheduled_for": env.clock.now().isoformat(),
            "trigger": "manual",
        }
        assert run.input == {"k": 1}
        info = await engine.schedules.get("nightly")
        assert info is not None and info.last_run_id == run.id
        with pytest.raises(WorkflowNotFoundError):
            await engine.schedules.trigger("nope")


async def test_backfill_starts_each_past_occurrence_once_and_never_again(env: Env) -> None:
    async with env.engine() as engine:
        engine.schedule("nightly", report(engine), cron="0 2 * * *")
        await env.settle()
        await env.clock.advance(DAY)  # 2030-01-01T02:00 fires on time
        start, end = datetime(2029, 12, 29, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC)
        runs = await engine.schedules.backfill("nightly", start, end)
        assert [r.meta["scheduled_for"][:10] for r in runs] == [
            "2029-12-29",
            "2029-12-30",
            "2029-12-31",
            "2030-01-01",
        ]
        on_time = [r for r in await runs_of(engine, "nightly") if r.id == runs[-1].id]
        assert len(on_time) == 1  # the on-time occurrence was not started twice
        again = await engine.schedules.backfill("nightly", start, end)
        assert [r.id for r in again] == [r.id for r in runs]
        assert len(await runs_of(engine, "nightly")) == 4


async def test_delete_removes_the_schedule_and_keeps_its_runs(env: Env) -> None:
    async with env.engine() as engine:
        engine.schedule("poll", report(engine), every=60)
        await env.clock.advance(60)
        await engine.schedules.delete("poll")
        assert await engine.schedules.list() == []
        await env.clock.advance(600)
        assert len(await runs_of(engine, "poll")) == 1
        with pytest.raises(WorkflowNotFoundError):
            await engine.schedules.pause("poll")


@pytest.mark.parametrize(
    ("overlap", "started", "cancelled"),
    [("skip", 1, 0), ("allow", 3, 0), ("cancel_previous", 3, 2)],
)
async def test_overlap_policy_decides_while_the_previous_run_is_active(
    env: Env, overlap: Any, started: int, cancelled: int
) -> None:
    async with env.engine() as engine:
        engine.schedule("poll", report(engine, waits=True), every=60, overlap=overlap)
        await env.settle()
        await env.clock.advance(180)
        runs = await runs_of(engine, "poll")
    assert len(runs) == started
    assert sum(r.status == RunStatus.CANCELLED for r in runs) == cancelled


@pytest.mark.parametrize(("catch_up", "missed"), [("all", 3), ("latest", 1), ("none", 0)])
async def test_catch_up_after_every_worker_was_down(env: Env, catch_up: Any, missed: int) -> None:
    async with env.engine() as first:
        first.schedule("nightly", report(first), cron="0 2 * * *", catch_up=catch_up)
        await env.settle()
    await env.clock.advance(3 * DAY)  # 01-01, 01-02 and 01-03 at 02:00 pass with no worker
    async with env.engine() as second:
        second.schedule("nightly", report(second), cron="0 2 * * *", catch_up=catch_up)
        await env.settle()
        assert len(await runs_of(second, "nightly")) == missed
        await env.clock.advance(DAY)  # 01-04 02:00 is on time
        times = fired_at(await runs_of(second, "nightly"))
    assert len(times) == missed + 1
    assert times[-1] == datetime(2030, 1, 4, 2, tzinfo=UTC)


async def test_catch_up_window_drops_older_missed_occurrences(env: Env) -> None:
    first = env.engine()
    first.schedule("nightly", report(first), cron="0 2 * * *", catch_up="all")
    async with first:
        await env.settle()
    await env.clock.advance(3 * DAY + 3600)
    async with env.engine() as second:
        second.schedule(
            "nightly",
            report(second),
            cron="0 2 * * *",
            catch_up="all",
            catch_up_window=timedelta(days=2),
        )
        await env.settle()
        times = fired_at(await runs_of(second, "nightly"))
    assert times == [datetime(2030, 1, 2, 2, tzinfo=UTC), datetime(2030, 1, 3, 2, tzinfo=UTC)]


class BusinessDays:
    """A shape of our own: ``spec={"business_days_at": HOUR}`` (UTC, Monday to Friday)."""

    @hookimpl
    def streamline_next_occurrence(self, schedule: Any, after: datetime) -> datetime | None:
        spec = getattr(schedule, "spec", None)
        if not isinstance(schedule, Recurrence) or not isinstance(spec, dict):
            return None
        at = after.replace(hour=spec["business_days_at"], minute=0, second=0, microsecond=0)
        while at <= after or at.weekday() >= 5:
            at += timedelta(days=1)
        return at


async def test_a_plugin_adds_a_recurrence_shape(env: Env) -> None:
    async with env.engine(plugins=[BusinessDays()]) as engine:
        engine.schedule("standup", report(engine), spec={"business_days_at": 9})
        await env.settle()
        await env.clock.advance(7 * DAY)  # 2030-01-01 is a Tuesday
        times = fired_at(await runs_of(engine, "standup"))
    assert [t.strftime("%a %H") for t in times] == [
        "Tue 09",
        "Wed 09",
        "Thu 09",
        "Fri 09",
        "Mon 09",
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"cron": "61 * * * *"},
        {"cron": "not cron"},
        {"cron": "0 2 * * *", "timezone": "Mars/Olympus"},
        {"cron": "0 2 * * *", "every": 60},
        {},
        {"every": 0},
        {"spec": {"unknown": "shape"}},
        {"every": 60, "overlap": "sometimes"},
        {"every": 60, "catch_up": "most"},
        {"every": 60, "input": {1, 2}},
    ],
)
def test_bad_schedules_raise_validation_error_at_declaration(options: dict[str, Any]) -> None:
    from streamline_testing import InMemoryStore

    engine = Engine(InMemoryStore(), load_entry_point_plugins=False)
    with pytest.raises(ValidationError):
        engine.schedule("bad", report(engine), **options)


# Two bugs DBOS users reported, kept here as regression tests.


async def test_a_suspended_process_does_not_replay_every_missed_tick_without_catch_up(
    env: Env,
) -> None:
    """DBOS: after the process was suspended for hours, every missed tick ran at once although
    backfill was off. Here a minutely schedule whose worker is gone for ten hours starts only
    what its catch-up policy asks for (the default, ``latest``), then keeps its cadence."""
    async with env.engine() as worker:
        worker.schedule("minutely", report(worker), cron="* * * * *")
        await env.settle()
        for _ in range(3):
            await env.clock.advance(60)
        before = len(await runs_of(worker, "minutely"))
    assert before == 3
    await env.clock.advance(10 * 3600)  # the process is suspended: 600 ticks pass unseen
    async with env.engine() as resumed:
        resumed.schedule("minutely", report(resumed), cron="* * * * *")
        await env.settle()
        after_resume = len(await runs_of(resumed, "minutely"))
        for _ in range(2):
            await env.clock.advance(60)
        final = fired_at(await runs_of(resumed, "minutely"))
    # The latest missed tick and the one due as it resumes, never the 600 it slept through.
    assert 1 <= after_resume - before <= 3
    assert len(final) == after_resume + 2  # then one a minute again
    assert len(set(final)) == len(final)


async def test_a_daily_cron_fires_once_a_day_whenever_its_next_fire_is_computed(
    env: Env,
) -> None:
    """DBOS: a daily cron fired hourly through an error in its next-fire lookahead. Here the
    next fire is computed after every hour of three days (each wake-up and re-read of the
    schedule), and the schedule still fires exactly once a day, at 09:00 in its zone."""
    async with env.engine() as engine:
        engine.schedule("daily", report(engine), cron="0 9 * * *", timezone="America/New_York")
        await env.settle()
        nexts: set[datetime | None] = set()
        for _ in range(72):
            await env.clock.advance(3600)
            info = await engine.schedules.get("daily")
            nexts.add(info.next_fire_at)
        times = fired_at(await runs_of(engine, "daily"))
    assert len(times) == 3
    assert all(
        pairwise_gap == timedelta(days=1) for pairwise_gap in (b - a for a, b in pairwise(times))
    )
    assert {t.astimezone(ZoneInfo("America/New_York")).hour for t in times} == {9}
    assert len(nexts) == 3 + 1  # one next fire per day (and the one after the last run)


async def test_a_schedule_declared_on_a_started_engine_survives_an_immediate_shutdown(
    env: Env,
) -> None:
    async with env.engine() as engine:
        engine.schedule("late", report(engine), every=3600)
    again = env.engine()
    report(again)
    info = await again.schedules.get("late")
    assert info is not None and info.name == "late"


async def test_the_internal_schedule_workflow_is_a_registered_workflow_like_any(env: Env) -> None:
    engine = env.engine()
    engine.schedule("hourly", report(engine), every=3600)
    assert "streamline.schedule" in engine.workflow_names
    assert engine.get_workflow("streamline.schedule").name == "streamline.schedule"
