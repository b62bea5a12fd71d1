"""Dashboard pages over httpx: what they show, escaping, login, read-only, headers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from streamline_core import RunStatus, StepState, StepStatus, WorkflowRun
from streamline_web import create_app
from streamline_web.dashboard import timeline
from tests.web.support import XSS, client, make_engine, settle


async def test_pages_escape_user_data() -> None:
    async with make_engine() as engine:
        run = await engine.get_workflow("approval").start({"note": XSS}, meta={"who": XSS})
        failed = await engine.get_workflow("broken").start(XSS)
        await settle(engine)
        async with client(create_app(engine)) as http:
            pages = {
                "run": (await http.get(f"/runs/{run.id}")).text,
                "failed": (await http.get(f"/runs/{failed.id}")).text,
                "overview": (await http.get("/")).text,
                "runs": (await http.get("/runs")).text,
            }
        for name, html in pages.items():
            assert "<script>alert" not in html, name
        # input, meta, context, step output (run page) and the error message (failed run).
        escaped = "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;"
        assert pages["run"].count(escaped) >= 4
        assert escaped in pages["failed"] and "Traceback" in pages["failed"]
        assert escaped in pages["overview"]  # the recent failure's message


async def test_overview_counts_failures_and_waiting() -> None:
    async with make_engine() as engine:
        waiting = await engine.get_workflow("approval").start({})
        failed = await engine.get_workflow("broken").start(1)
        await settle(engine)
        async with client(create_app(engine)) as http:
            html = (await http.get("/")).text
        assert re.search(r'data-status="waiting"><span class="n">1</span>', html)
        assert re.search(r'data-status="failed"><span class="n">1</span>', html)
        assert waiting.id in html and failed.id in html
        assert "Manager approval" in html


async def test_runs_page_filters_and_pages() -> None:
    async with make_engine() as engine:
        ids = [(await engine.get_workflow("approval").start({})).id for _ in range(30)]
        broken = await engine.get_workflow("broken").start(1)
        await settle(engine)
        async with client(create_app(engine)) as http:
            first = (await http.get("/runs", params={"status": "waiting", "limit": 25})).text
            assert broken.id not in first
            shown = [i for i in ids if i in first]
            assert len(shown) == 25
            next_url = re.search(r'id="next-page" href="([^"]+)"', first)
            assert next_url is not None
            second = (await http.get("/runs" + next_url.group(1).replace("&amp;", "&"))).text
            assert len([i for i in ids if i in second]) == 5 and "first page" in second
            only_broken = (await http.get("/runs", params={"workflow": "broken"})).text
            assert broken.id in only_broken and ids[0] not in only_broken
            bad = await http.get("/runs", params={"status": "sleeping"})
            assert bad.status_code == 400 and "unknown status" in bad.text
            assert 'id="live-refresh"' in first


async def test_run_page_shows_the_timeline_and_the_forms() -> None:
    async with make_engine() as engine:
        run = await engine.get_workflow("approval").start({"note": "n"})
        await settle(engine)
        async with client(create_app(engine)) as http:
            html = (await http.get(f"/runs/{run.id}")).text
            # prepare: one attempt; approve: the attempt that suspended, then its wait.
            assert html.count('data-kind="attempt"') == 2
            assert html.count('data-kind="wait"') == 1
            assert "for a person: Manager approval" in html
            assert "not started" in html  # finish has not begun
            assert 'id="resume-form"' in html and 'data-action="cancel"' in html
            assert 'id="rewind-form"' in html and "Manager approval" in html
            missing = await http.get("/runs/nope")
            assert missing.status_code == 404 and "no run" in missing.text
        async with client(create_app(engine, read_only=True)) as http:
            html = (await http.get(f"/runs/{run.id}")).text
            assert 'id="resume-form"' not in html and 'data-action="cancel"' not in html
            assert "read-only" in html


async def test_run_pages_link_a_parent_and_its_children() -> None:
    async with make_engine() as engine:
        child = engine.workflow("leaf", steps={"one": lambda ctx: ctx.input["n"]})

        async def fan_out(ctx: Any) -> None:
            await ctx.run_children([(child, {"n": n}) for n in range(3)])

        parent_wf = engine.workflow("tree", steps={"fan": fan_out})
        parent = await parent_wf.start()
        await parent_wf.wait_for(parent.id, timeout=60)
        kids = (await engine.runs.find(parent_run_id=parent.id)).items
        assert len(kids) == 3
        async with client(create_app(engine)) as http:
            html = (await http.get(f"/runs/{parent.id}")).text
            assert 'id="run-children"' in html and "Child runs" in html
            for kid in kids:
                assert f'href="/runs/{kid.id}"' in html
            kid_html = (await http.get(f"/runs/{kids[0].id}")).text
            assert 'id="run-parent"' in kid_html and f'href="/runs/{parent.id}"' in kid_html
            assert "(step <code>fan</code>)" in kid_html
            listed = (await http.get("/api/runs", params={"parent_run_id": parent.id})).json()
            assert sorted(r["id"] for r in listed["items"]) == sorted(k.id for k in kids)
            plain = (await http.get(f"/runs/{kids[0].id}")).text
            assert 'id="run-children"' not in plain


def test_timeline_geometry() -> None:
    t0 = datetime(2030, 1, 1, tzinfo=UTC)

    def at(s: float) -> datetime:
        return t0 + timedelta(seconds=s)

    run = WorkflowRun(
        id="r",
        workflow_id="w",
        status=RunStatus.DONE,
        created_at=t0,
        updated_at=at(100),
        ended_at=at(100),
        steps=[
            StepState(
                step_id="a", status=StepStatus.DONE, attempts=1, started_at=t0, ended_at=at(25)
            ),
            StepState(
                step_id="b", status=StepStatus.DONE, attempts=3, started_at=at(25), ended_at=at(100)
            ),
            StepState(step_id="c", status=StepStatus.SKIPPED),
        ],
    )
    a, b, c = timeline(run)
    assert (a.left, a.width, a.duration) == (0.0, 25.0, "25 s")
    assert (b.left, b.width, b.duration) == (25.0, 75.0, "1 m 15 s")
    assert not c.drawn and c.segments == ()


async def test_login_with_the_token() -> None:
    async with make_engine() as engine:
        run = await engine.get_workflow("approval").start({})
        await settle(engine)
        async with client(create_app(engine, token="s3cret")) as http:
            redirect = await http.get(f"/runs/{run.id}")
            assert redirect.status_code == 303
            assert redirect.headers["location"] == f"/login?next=%2Fruns%2F{run.id}"
            form = await http.get("/login")
            assert form.status_code == 200 and 'name="token"' in form.text
            wrong = await http.post(
                "/login",
                content="token=nope&next=/",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert wrong.status_code == 401 and "not right" in wrong.text
            evil = await http.post(
                "/login",
                content="token=s3cret&next=/",
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Origin": "https://evil.example",
                },
            )
            assert evil.status_code == 403
            ok = await http.post(
                "/login",
                content="token=s3cret&next=//evil.example/",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert ok.status_code == 303 and ok.headers["location"] == "/"  # no open redirect
            cookie = ok.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            page = await http.get(f"/runs/{run.id}")
            assert page.status_code == 200 and run.id in page.text
            out = await http.post("/logout")
            assert out.status_code == 303
            http.cookies.clear()
            assert (await http.get("/")).status_code == 303


async def test_auth_callable_refuses_pages_without_a_login_form() -> None:
    engine = make_engine()
    async with engine, client(create_app(engine, auth=lambda request: False)) as http:
        page = await http.get("/")
        assert page.status_code == 401 and "authentication required" in page.text
        assert (await http.get("/login")).status_code == 404


async def test_security_headers_and_shipped_assets() -> None:
    async with make_engine() as engine, client(create_app(engine)) as http:
        page = await http.get("/")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        for asset in ("/static/dashboard.js", "/static/dashboard.css"):
            assert (await http.get(asset)).status_code == 200
        # Nothing on a page comes from another host.
        assert not re.search(r'(src|href)="(https?:)?//', page.text)
