"""A real browser (Debian's Chromium, driven by Playwright) against a uvicorn server on localhost.

Never skipped: ``.ci/run`` installs the ``chromium`` package when
/usr/bin/chromium is missing. Playwright's own browser downloads are never
used (``playwright install`` cannot reach its hosts here).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import expect, sync_playwright

from streamline_core import Engine
from streamline_testing import InMemoryStore
from streamline_web import create_app
from tests.web.support import XSS, make_engine, settle

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-test-token"


class LiveServer:
    """uvicorn serving ``create_app`` on a free 127.0.0.1 port, in a thread with its own loop.

    The app's engine is also the worker (real clock, in-memory store), so a
    run resumed in the browser goes on to finish.
    """

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.run_id = ""
        self.url = ""
        self.error: BaseException | None = None
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        if not self.ready.wait(15) or self.error is not None:
            raise RuntimeError(f"server did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(10)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        engine: Engine = make_engine(InMemoryStore(), clock=None)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with engine:
            run = await engine.get_workflow("approval").start({"note": XSS}, meta={"who": XSS})
            await settle(engine)
            self.run_id = run.id
            config = uvicorn.Config(
                create_app(engine, token=TOKEN), log_level="warning", lifespan="off"
            )
            self._server = uvicorn.Server(config)
            self.url = f"http://127.0.0.1:{port}"
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, self.ready.set)
            await self._server.serve(sockets=[sock])


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Any]:
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does this)"
    )
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_log_in_resume_a_waiting_run_and_see_it_done(browser_page: Any) -> None:
    page = browser_page
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    with LiveServer() as server:
        page.goto(f"{server.url}/runs/{server.run_id}")
        # Not logged in: the login form, then back to the run.
        expect(page.locator("input[name=token]")).to_be_visible()
        page.fill("input[name=token]", TOKEN)
        page.click("form.login button")
        expect(page.locator("#run-status")).to_have_text("waiting")

        # The timeline: a drawn bar for each started step, with a real width on screen.
        bars = page.locator("#timeline .bar")
        expect(bars).to_have_count(2)
        for i in range(2):
            box = bars.nth(i).bounding_box()
            assert box is not None and box["width"] > 1 and box["height"] > 4
        expect(page.locator("#run-input")).to_contain_text(XSS)  # shown as text, not run

        page.fill("#resume-payload", '{"approved": true, "by": "browser"}')
        page.click("#resume-button")
        expect(page.locator("#run-status")).to_have_text("done", timeout=15_000)
        expect(page.locator("#run-output")).to_contain_text('"by": "browser"')
        expect(page.locator("#timeline .bar")).to_have_count(3)

        page.goto(f"{server.url}/")
        expect(page.locator(".count.done .n")).to_have_text("1")
        page.goto(f"{server.url}/runs")
        expect(page.locator(f"a:text('{server.run_id}')")).to_be_visible()
    assert not problems, problems
