"""The runs that hold schedules are left out of the overview and the runs list unless asked."""

from __future__ import annotations

import re

from streamline_core import Engine, RunStatus
from streamline_core.schedule_info import SCHEDULE_WORKFLOW
from streamline_testing import FakeClock, InMemoryStore
from streamline_web import create_app
from streamline_web._visible import counts_by_status, find_visible
from tests.web.support import add_schedules, client, make_engine, settle


def _scheduled() -> Engine:
    engine = make_engine()
    add_schedules(engine)  # two schedules: two runs of streamline.schedule
    return engine


def _count(html: str, status: str) -> int:
    found = re.search(rf'data-status="{status}"><span class="n">(\d+)</span>', html)
    assert found is not None, status
    return int(found.group(1))


async def test_overview_counts_leave_out_the_schedule_runs_unless_asked() -> None:
    async with _scheduled() as engine, client(create_app(engine)) as http:
        await engine.get_workflow("approval").start({})
        await settle(engine)
        assert await engine.runs.count(workflow_id=SCHEDULE_WORKFLOW) == 2
        every = await engine.runs.count()
        assert every == 3

        html = (await http.get("/")).text
        assert _count(html, "all") == 1 and _count(html, "waiting") == 1
        assert "sched-" not in html  # nor in the oldest waiting runs
        assert 'href="/?internal=1"' in html

        shown = (await http.get("/", params={"internal": "1"})).text
        assert _count(shown, "all") == every
        assert 'href="/runs?status=waiting&amp;internal=1"' in shown


async def test_counts_by_status_subtracts_only_the_internal_runs() -> None:
    async with _scheduled() as engine:
        await engine.get_workflow("broken").start(1)
        await settle(engine)
        hidden = await counts_by_status(engine, internal=False)
        every = await counts_by_status(engine, internal=True)
        assert hidden["failed"] == every["failed"] == 1
        internal_by_status = {
            s.value: await engine.runs.count(status=s, workflow_id=SCHEDULE_WORKFLOW)
            for s in RunStatus
        }
        assert {k: every[k] - hidden[k] for k in every} == internal_by_status
        assert sum(every.values()) - sum(hidden.values()) == 2


async def test_runs_page_hides_schedule_runs_behind_a_checkbox() -> None:
    async with _scheduled() as engine, client(create_app(engine)) as http:
        run = await engine.get_workflow("approval").start({})
        await settle(engine)
        html = (await http.get("/runs")).text
        assert run.id in html and "sched-" not in html
        assert (
            'id="show-internal"' in html
            and "checked" not in html.split('id="show-internal"')[1][:12]
        )
        shown = (await http.get("/runs", params={"internal": "1"})).text
        assert run.id in shown and shown.count('href="/runs/sched-') == 2
        # Naming the internal workflow shows its runs, as asked.
        named = (await http.get("/runs", params={"workflow": SCHEDULE_WORKFLOW})).text
        assert named.count('href="/runs/sched-') == 2 and run.id not in named


async def test_paging_without_internal_runs_skips_and_repeats_nothing() -> None:
    store, clock = InMemoryStore(), FakeClock()
    ids = []
    async with make_engine(store, clock=clock) as before:
        for _ in range(4):
            ids.append((await before.get_workflow("approval").start({})).id)
            await clock.advance(1)
    engine = make_engine(store, clock=clock)
    add_schedules(engine)
    async with engine:  # the schedule runs come after the first four, before the rest
        await clock.advance(1)
        for _ in range(3):
            ids.append((await engine.get_workflow("approval").start({})).id)
            await clock.advance(1)
        await settle(engine)
        created = [r.id for r in (await engine.runs.find(sort="created_at")).items]
        internal = [i.startswith("sched-") for i in created]
        assert internal == [False] * 4 + [True] * 2 + [False] * 3
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            items, cursor = await find_visible(engine, internal=False, limit=3, cursor=cursor)
            assert len(items) <= 3
            seen += [r.id for r in items]
            pages += 1
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
        assert pages == 3
        for sort in ("created_at", "-updated_at"):
            items, cursor = await find_visible(engine, internal=False, limit=5, sort=sort)
            rest, end = await find_visible(
                engine, internal=False, limit=5, sort=sort, cursor=cursor
            )
            assert end is None
            assert sorted(r.id for r in items + rest) == sorted(ids), sort
