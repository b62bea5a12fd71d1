"""A real browser (Debian's Chromium, driven by Playwright) against a uvicorn server on localhost.

Never skipped: ``.ci/run`` installs the ``chromium`` package when
/usr/bin/chromium is missing. Playwright's own browser downloads are never
used (``playwright install`` cannot reach its hosts here).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from streamline_core import Engine
from streamline_testing import InMemoryStore
from tests.web.live import VIEWPORT, LiveServer, chromium, fresh_context
from tests.web.screenshots import PAGES, capture, demo_engine, populate_demo
from tests.web.support import XSS, add_schedules, make_engine, settle

TOKEN = "browser-test-token"


def _engine() -> Engine:
    engine = make_engine(InMemoryStore())
    add_schedules(engine)
    return engine


async def _waiting_run(engine: Engine) -> dict[str, str]:
    run = await engine.get_workflow("approval").start({"note": XSS}, meta={"who": XSS})
    await settle(engine)
    return {"run": run.id}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # One browser for the module (per xdist worker running its tests); every test
    # gets its own context (cookies, storage).
    with chromium() as launched:
        yield launched


@pytest.fixture
def confirms() -> list[str]:
    """Confirmation prompts the test expects (each accepted once); any other dialog fails it."""
    return []


@pytest.fixture
def browser_page(browser: Browser, confirms: list[str]) -> Iterator[Any]:
    with fresh_context(browser) as context:
        page = context.new_page()
        problems: list[str] = []

        def on_dialog(dialog: Any) -> None:
            if dialog.type == "confirm" and dialog.message in confirms:
                confirms.remove(dialog.message)
                dialog.accept()
            else:
                problems.append(f"dialog: {dialog.message}")
                dialog.dismiss()

        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "console",
            lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        page.on("dialog", on_dialog)
        yield page
        assert not problems, problems
        assert not confirms, f"expected prompts never came: {confirms}"


def _log_in(page: Any) -> None:
    expect(page.locator("input[name=token]")).to_be_visible()
    page.fill("input[name=token]", TOKEN)
    page.click("form.login button")


def test_log_in_resume_a_waiting_run_and_see_it_done(browser_page: Any) -> None:
    page = browser_page
    with LiveServer(_engine, _waiting_run, token=TOKEN) as server:
        run_id = server.ids["run"]
        page.goto(f"{server.url}/runs/{run_id}")
        # Not logged in: the login form, then back to the run.
        _log_in(page)
        expect(page.locator("#run-status")).to_have_text("waiting")

        # The timeline: prepare's attempt, and approve's attempt then its wait, each
        # with a real size on screen and its story on hover.
        attempts = page.locator("#timeline .seg[data-kind=attempt]")
        expect(attempts).to_have_count(2)
        wait = page.locator("#timeline li[data-step=approve] .seg[data-kind=wait]")
        expect(wait).to_have_attribute("title", re.compile("for a person: Manager approval"))
        for seg in (attempts.nth(0), attempts.nth(1), wait):
            box = seg.bounding_box()
            assert box is not None and box["width"] > 1 and box["height"] > 4
        expect(page.locator("#run-input")).to_contain_text(XSS)  # shown as text, not run

        page.fill("#resume-payload", '{"approved": true, "by": "browser"}')
        page.click("#resume-button")
        expect(page.locator("#run-status")).to_have_text("done", timeout=15_000)
        expect(page.locator("#run-output")).to_contain_text('"by": "browser"')
        expect(page.locator("#timeline .seg[data-kind=attempt]")).to_have_count(3)
        expect(page.locator("#timeline .seg[data-kind=wait]")).to_have_count(0)

        page.goto(f"{server.url}/")
        expect(page.locator(".count.done .n")).to_have_text("1")
        page.goto(f"{server.url}/runs")
        expect(page.locator(f"a:text('{run_id}')")).to_be_visible()


async def _some_runs(engine: Engine) -> dict[str, str]:
    waiting = await engine.get_workflow("approval").start({"note": "refund"})
    await engine.get_workflow("broken").start("order 17")
    await settle(engine)
    return {"waiting": waiting.id}


def test_filter_runs_open_one_and_cancel_it(browser_page: Any, confirms: list[str]) -> None:
    page = browser_page
    with LiveServer(_engine, _some_runs) as server:
        page.goto(f"{server.url}/")
        expect(page.locator(".count[data-status=all] .n")).to_have_text("2")  # no schedule runs
        page.click("header nav a:text('Runs')")
        rows = page.locator("#runs-live tbody tr")
        expect(rows).to_have_count(2)
        # The runs that hold the two schedules show only when asked.
        page.check("#show-internal")
        page.click("form.filters button[type=submit]")
        expect(rows).to_have_count(4)
        expect(page.locator("#runs-live a:text('schedule')")).to_have_count(2)
        page.uncheck("#show-internal")
        page.check("form.filters input[name=status][value=failed]")
        page.click("form.filters button[type=submit]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("bad input order 17")

        page.uncheck("form.filters input[name=status][value=failed]")
        page.check("form.filters input[name=status][value=waiting]")
        page.click("form.filters button[type=submit]")
        expect(rows).to_have_count(1)
        page.click(f"a:text('{server.ids['waiting']}')")
        expect(page.locator("#run-status")).to_have_text("waiting")
        confirms.append("Cancel this run?")
        page.click("button[data-action=cancel]")
        expect(page.locator("#run-status")).to_have_text("cancelled", timeout=15_000)
        expect(page.locator(".run-error")).to_contain_text("WORKFLOW_CANCELLED")
        # The wait ended with the run: drawn to its end, no longer open.
        wait = page.locator("#timeline li[data-step=approve] .seg[data-kind=wait]")
        expect(wait).to_have_class(re.compile("o-cancelled"))
        expect(page.locator("button[data-action=cancel]")).to_have_count(0)


def test_pause_and_trigger_a_schedule_from_its_page(browser_page: Any) -> None:
    page = browser_page
    with LiveServer(_engine, _waiting_run, token=TOKEN) as server:
        page.goto(f"{server.url}/")
        _log_in(page)
        page.click("header nav a:text('Schedules')")
        row = page.locator("#schedules tr[data-schedule='nightly']")
        expect(row.locator(".state")).to_have_text("active")
        expect(row.locator(".last-run")).to_have_text("none yet")

        row.locator("button[data-action=pause]").click()
        expect(row.locator(".state")).to_have_text("paused")
        expect(row.locator(".next-fire")).to_have_text("—")
        expect(row.locator("button[data-action=unpause]")).to_be_visible()

        row.locator("button[data-action=trigger]").click()
        link = row.locator(".last-run a")
        expect(link).to_be_visible()
        expect(row.locator(".last-run")).to_contain_text("manual")
        link.click()
        expect(page.locator("h1")).to_contain_text("report")
        expect(page.locator("#run-status")).to_have_text("done")  # the server is the worker
        expect(page.locator("#run-meta")).to_contain_text('"trigger": "manual"')

        page.go_back()
        row.locator("button[data-action=unpause]").click()
        expect(row.locator(".state")).to_have_text("active")
        expect(row.locator(".next-fire")).to_contain_text("UTC")
        # The other schedule was left alone.
        poll = page.locator("#schedules tr[data-schedule='poll']")
        expect(poll.locator(".state")).to_have_text("active")


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_screenshots_of_every_page(browser_page: Any, tmp_path: Path) -> None:
    # The pictures in docs/web.md come from this (python -m tests.web.screenshots);
    # here they go to a temporary directory, so a test run never rewrites docs/img.
    with LiveServer(demo_engine, populate_demo) as server:
        shots = capture(browser_page, server.url, server.ids["run"], tmp_path / "img")
    assert [p.name for p in shots] == [f"dashboard-{name}.png" for name in PAGES]
    for path in shots:
        assert _png_size(path) == (VIEWPORT["width"], VIEWPORT["height"]), path
        assert path.stat().st_size > 10_000, path  # not a blank page
