"""A live dashboard for browser tests: uvicorn on a free 127.0.0.1 port, and Debian's Chromium.

Playwright drives /usr/bin/chromium; its own browser downloads are never used
(``playwright install`` cannot reach its hosts here).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Browser, BrowserContext, ViewportSize, sync_playwright

from streamline_core import Engine
from streamline_web import create_app

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
VIEWPORT = ViewportSize(width=1100, height=700)

Populate = Callable[[Engine], Awaitable[dict[str, str]]]


class LiveServer:
    """uvicorn serving ``create_app`` in a thread with its own loop.

    The app's engine is also the worker (so a run resumed or triggered in the
    browser goes on to finish). ``populate(engine)`` runs on the started
    engine before the server listens; the ids it answers are in :attr:`ids`.

    Args:
        build: Makes the engine (called on the server's thread).
        populate: Starts the runs the test needs; answers named ids.
        app: Keyword arguments of ``create_app`` (``token=``, ``read_only=``).
    """

    def __init__(self, build: Callable[[], Engine], populate: Populate, **app: Any) -> None:
        self.ready = threading.Event()
        self.ids: dict[str, str] = {}
        self.url = ""
        self.error: BaseException | None = None
        self._build = build
        self._populate = populate
        self._app = app
        self._server: uvicorn.Server | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        if not self.ready.wait(20) or self.error is not None:
            raise RuntimeError(f"server did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
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
        engine = self._build()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with engine:
            self.ids = await self._populate(engine)
            config = uvicorn.Config(
                create_app(engine, **self._app), log_level="warning", lifespan="off"
            )
            self._server = uvicorn.Server(config)
            self.url = f"http://127.0.0.1:{port}"
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, self.ready.set)
            await self._server.serve(sockets=[sock])


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium, launched once: give each test its own :func:`fresh_context`.

    Launching the browser is the slow part (about a second); a context is a
    fresh profile (no cookies, no storage) and takes a few milliseconds.
    """
    assert Path(CHROMIUM).exists(), (
        f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does this)"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def fresh_context(browser: Browser) -> Iterator[BrowserContext]:
    """A new incognito-like context (1100×700 viewport) on ``browser``."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context
    finally:
        context.close()
