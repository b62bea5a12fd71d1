"""Screenshots of the dashboard's pages for docs/web.md, from a live server with demo runs.

``python -m tests.web.screenshots`` (from the repository root) rewrites
``docs/img/dashboard-*.png``; the browser test calls :func:`capture` into a
temporary directory on every run, so the pages keep rendering, but a test
run never rewrites committed files (the pages show times and random ids).
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from streamline_core import Engine, StepContext
from streamline_testing import FakeClock, InMemoryStore
from tests.web.live import LiveServer, chromium, fresh_context
from tests.web.support import add_schedules, make_engine

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
PAGES = ("overview", "runs", "run", "schedules")


class DemoClock(FakeClock):
    """A ``FakeClock`` that steps move forward with :meth:`spend`, without awaiting.

    A step awaiting ``advance`` while the test's own ``advance`` is waking it
    would nest the two, and the outer one sets the time back when it ends.
    """

    def __init__(self) -> None:
        super().__init__()
        self._spent = timedelta(0)

    def now(self) -> datetime:
        """The fake time plus what the steps spent."""
        return super().now() + self._spent

    def spend(self, seconds: float) -> None:
        """Move time forward ``seconds`` (a step "working")."""
        self._spent += timedelta(seconds=seconds)


def demo_engine() -> Engine:
    """The test workflows, an ``etl`` pipeline with a retried step, and three schedules.

    Under a ``FakeClock`` (2030-01-01, so the pictures show the same times on
    every run): the steps move it forward to take their time on the timeline.
    """
    clock = DemoClock()
    engine = make_engine(InMemoryStore(), clock=clock)
    etl = engine.workflow("etl")
    failed_once: set[str] = set()

    @etl.step
    async def extract(ctx: StepContext) -> Any:
        clock.spend(0.12)
        return {"rows": 1200, "source": ctx.input}

    @etl.step(retries=3, retry_delay=0.1)
    async def transform(ctx: StepContext) -> Any:
        if ctx.run_id not in failed_once:
            failed_once.add(ctx.run_id)
            clock.spend(0.05)
            raise ConnectionError("warehouse connection reset")
        clock.spend(0.2)
        return {"rows": 1187, "dropped": 13}

    @etl.step
    async def load(ctx: StepContext) -> Any:
        clock.spend(0.08)
        return {"table": "sales_daily", "rows": ctx.get_output("transform")["rows"]}

    add_schedules(engine)
    engine.schedule("weekly-digest", "approval", cron="0 9 * * MON", timezone="America/New_York")
    return engine


async def populate_demo(engine: Engine) -> dict[str, str]:
    """Runs in every state; answers ``{"run": <the etl run shown on the run page>}``."""
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    etl = engine.get_workflow("etl")
    runs = []
    for day in (1, 2):  # one at a time, so each timeline shows its own steps only
        run = await etl.start(f"s3://exports/2030-01-0{day}.csv")
        for _ in range(20):  # the retry of transform is due 0.1 s (and some jitter) later
            await clock.advance(0.1)
            stored = await engine.runs.get(run.id)
            if stored is not None and stored.is_terminal:
                break
        runs.append(run)
    for note in ("refund for order 1041", "new supplier"):
        await engine.get_workflow("approval").start({"note": note}, meta={"user": "dana"})
    await engine.get_workflow("broken").start("order 17")
    await engine.get_workflow("events").start()
    await engine.schedules.trigger("poll")
    await engine.schedules.pause("weekly-digest")
    await clock.advance(0)
    return {"run": runs[0].id}


def capture(page: Page, url: str, run_id: str, out: Path) -> list[Path]:
    """Save ``dashboard-{page}.png`` of every page in :data:`PAGES` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    shots = {
        "overview": (f"{url}/", ".counts"),
        "runs": (f"{url}/runs", "#runs-live table"),
        "run": (f"{url}/runs/{run_id}", "#timeline .seg"),
        "schedules": (f"{url}/schedules", "#schedules"),
    }
    saved = []
    for name, (address, ready) in shots.items():
        page.goto(address)
        expect(page.locator(ready).first).to_be_visible()
        path = out / f"dashboard-{name}.png"
        page.screenshot(path=str(path), animations="disabled")
        saved.append(path)
    return saved


def main(out: Path = DOCS_IMG) -> None:
    """Serve the demo, open each page in Chromium and save its screenshot into ``out``."""
    with (
        LiveServer(demo_engine, populate_demo) as server,
        chromium() as browser,
        fresh_context(browser) as context,
    ):
        for path in capture(context.new_page(), server.url, server.ids["run"], out):
            print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS_IMG)
