"""The schedules routes and page via httpx: list, pause, unpause, trigger, and their refusals."""

from __future__ import annotations

import pytest

from streamline_core import Engine
from streamline_testing import FakeClock, InMemoryStore
from streamline_web import create_app
from tests.web.support import XSS, add_schedules, client, error_of, make_engine, settle

ACTIONS = ("pause", "unpause", "trigger")


def _scheduled(**kwargs: object) -> Engine:
    engine = make_engine(**kwargs)  # type: ignore[arg-type]
    add_schedules(engine)
    return engine


async def test_list_pause_unpause() -> None:
    async with _scheduled() as engine, client(create_app(engine)) as http:
        listed = (await http.get("/api/schedules")).json()
        assert [s["name"] for s in listed] == ["nightly", "poll"]
        nightly = listed[0]
        assert nightly["workflow"] == "report" and nightly["timezone"] == "Europe/Berlin"
        assert nightly["spec"] == "0 2 * * *" and nightly["paused"] is False
        assert nightly["next_fire_at"] is not None and nightly["last_run_id"] is None

        paused = await http.post("/api/schedules/nightly/pause")
        assert paused.status_code == 200
        assert paused.json()["paused"] is True and paused.json()["next_fire_at"] is None
        assert (await engine.schedules.get("nightly")).paused  # type: ignore[union-attr]
        again = await http.post("/api/schedules/nightly/pause")  # pausing twice is fine
        assert again.status_code == 200 and again.json()["paused"] is True

        unpaused = (await http.post("/api/schedules/nightly/unpause")).json()
        assert unpaused["paused"] is False and unpaused["next_fire_at"] == nightly["next_fire_at"]
        listed = (await http.get("/api/schedules")).json()
        assert [s["paused"] for s in listed] == [False, False]


async def test_trigger_starts_a_manual_run() -> None:
    async with _scheduled() as engine, client(create_app(engine)) as http:
        answer = await http.post("/api/schedules/poll/trigger")
        assert answer.status_code == 200
        run = answer.json()
        assert run["workflow_id"] == "report" and run["input"] == "poll"
        assert run["meta"]["schedule"] == "poll" and run["meta"]["trigger"] == "manual"
        await settle(engine)
        done = await engine.runs.get(run["id"])
        assert done is not None and done.output == {"kind": "poll"}
        listed = {s["name"]: s for s in (await http.get("/api/schedules")).json()}
        assert listed["poll"]["last_run_id"] == run["id"]
        # A paused schedule can still be triggered: it is an explicit request.
        await http.post("/api/schedules/poll/pause")
        assert (await http.post("/api/schedules/poll/trigger")).status_code == 200


async def test_unknown_schedule_is_a_404() -> None:
    async with _scheduled() as engine, client(create_app(engine)) as http:
        for action in ACTIONS:
            assert error_of(await http.post(f"/api/schedules/nope/{action}")) == (
                404,
                "WORKFLOW_NOT_FOUND",
            ), action
            odd = await http.post(f"/api/schedules/%3Cb%3E%00%E2%80%AE/{action}")
            assert error_of(odd) == (404, "WORKFLOW_NOT_FOUND"), action
        assert error_of(await http.get("/api/schedules/nightly/pause")) == (
            405,
            "METHOD_NOT_ALLOWED",
        )
        assert error_of(await http.post("/api/schedules/nightly")) == (404, "NOT_FOUND")


async def test_trigger_without_the_workflow_registered_is_a_404() -> None:
    store, clock = InMemoryStore(), FakeClock()
    async with _scheduled(store=store, clock=clock):
        pass  # a worker stored the schedules
    bare = Engine(store, clock=clock, load_entry_point_plugins=False)  # knows no workflows
    async with client(create_app(bare)) as http:
        assert [s["name"] for s in (await http.get("/api/schedules")).json()] == ["nightly", "poll"]
        assert error_of(await http.post("/api/schedules/nightly/trigger")) == (
            404,
            "WORKFLOW_NOT_FOUND",
        )
        # Pause and unpause work from the store alone.
        assert (await http.post("/api/schedules/nightly/pause")).json()["paused"] is True


async def test_auth_cross_site_and_read_only() -> None:
    async with _scheduled() as engine:
        async with client(create_app(engine, token="t0ken")) as http:
            assert error_of(await http.get("/api/schedules")) == (401, "UNAUTHORIZED")
            for action in ACTIONS:
                assert error_of(await http.post(f"/api/schedules/nightly/{action}")) == (
                    401,
                    "UNAUTHORIZED",
                )
            bearer = {"Authorization": "Bearer t0ken"}
            for headers in (
                {"Origin": "https://evil.example"},
                {"Sec-Fetch-Site": "cross-site"},
                {"Content-Type": "text/plain"},
            ):
                for action in ACTIONS:
                    answer = await http.post(
                        f"/api/schedules/nightly/{action}",
                        content=b"{}",
                        headers={**bearer, **headers},
                    )
                    assert error_of(answer) == (403, "CROSS_SITE_REQUEST"), (action, headers)
            same = {**bearer, "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
            ok = await http.post("/api/schedules/nightly/pause", headers=same)
            assert ok.status_code == 200
            await http.post("/api/schedules/nightly/unpause", headers=same)
        async with client(create_app(engine, read_only=True)) as http:
            for action in ACTIONS:
                assert error_of(await http.post(f"/api/schedules/nightly/{action}")) == (
                    403,
                    "READ_ONLY",
                ), action
            assert len((await http.get("/api/schedules")).json()) == 2
            page = (await http.get("/schedules")).text
            assert "nightly" in page and 'data-action="pause"' not in page
        info = await engine.schedules.get("nightly")
        assert info is not None and not info.paused and info.last_run_id is None
        assert await engine.runs.count(workflow_id="report") == 0


async def test_a_tenant_app_sees_and_changes_only_its_schedules() -> None:
    store, clock = InMemoryStore(), FakeClock()
    async with (
        _scheduled(store=store, clock=clock, tenant_id="acme") as acme,
        make_engine(store, clock=clock, tenant_id="globex") as globex,
    ):
        globex_report = globex.workflow("report")

        @globex_report.step
        async def build() -> None:
            return None

        globex.schedule("theirs", globex_report, every=60)
        await settle(globex)
        assert [s.name for s in await globex.schedules.list()] == ["theirs"]
        async with client(create_app(acme)) as http:
            assert [s["name"] for s in (await http.get("/api/schedules")).json()] == [
                "nightly",
                "poll",
            ]
            for action in ACTIONS:
                assert error_of(await http.post(f"/api/schedules/theirs/{action}")) == (
                    404,
                    "WORKFLOW_NOT_FOUND",
                ), action
            assert "theirs" not in (await http.get("/schedules")).text
        theirs = await globex.schedules.get("theirs")
        assert theirs is not None and not theirs.paused and theirs.last_run_id is None


@pytest.mark.parametrize("read_only", [False, True], ids=["writable", "read-only"])
async def test_schedules_page(read_only: bool) -> None:
    engine = make_engine()
    add_schedules(engine, label=XSS)
    async with engine, client(create_app(engine, read_only=read_only)) as http:
        await engine.schedules.trigger("poll")
        await engine.schedules.pause("poll")
        await settle(engine)
        poll = await engine.schedules.get("poll")
        assert poll is not None and poll.last_run_id is not None
        answer = await http.get("/schedules")
        assert answer.status_code == 200
        page = answer.text
        assert XSS not in page and "&lt;script&gt;" in page
        assert 'href="/schedules"' in page  # in the navigation
        assert "0 2 * * *" in page and "Europe/Berlin" in page and "every 5 min" in page
        assert f'href="/runs/{poll.last_run_id}"' in page
        assert "paused" in page
        buttons = ('data-action="pause"', 'data-action="unpause"', 'data-action="trigger"')
        for button in buttons:
            assert (button in page) is not read_only, button
        nav = (await http.get("/")).text
        assert 'href="/schedules"' in nav


async def test_the_internal_schedule_workflow_is_not_listed() -> None:
    # Declaring a schedule registers streamline.schedule on the engine; /api/workflows
    # once answered a 500 for it (engine.get_workflow does not hand it out).
    async with _scheduled() as engine, client(create_app(engine)) as http:
        assert "streamline.schedule" in engine.registered_versions
        listed = await http.get("/api/workflows")
        assert listed.status_code == 200
        assert [w["name"] for w in listed.json()] == ["approval", "broken", "events", "report"]
        assert "streamline.schedule" not in (await http.get("/")).text
