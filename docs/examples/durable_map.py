"""Durable map: ``ctx.map`` fetches many pages inside one step, checkpointing each result.

Shows ``ctx.map(fn, items, concurrency=...)``: at most ``concurrency`` calls
at once, results in input order, and each finished item's result written to
the step's checkpoint as it completes (results that finish together share
one store write). When the step fails part-way (here a flaky page on the
first attempt), its retry runs only the items that had not finished: pages
already fetched are never fetched twice. The original library's closest
name is ``loop``/``checkpoint``.

Run it:

    python docs/examples/durable_map.py
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from streamline_core import Engine, StepConfig, StepContext, WorkflowRun
from streamline_testing import FakeClock

PAGES = [f"https://example.com/page/{n}" for n in range(8)]


class Site:
    """A fake web site: page 5 fails the first time it is fetched."""

    def __init__(self) -> None:
        self.fetches: Counter[str] = Counter()

    async def fetch(self, url: str) -> dict[str, Any]:
        self.fetches[url] += 1
        await asyncio.sleep(0.01)
        if url.endswith("/5") and self.fetches[url] == 1:
            raise ConnectionError(f"{url}: connection reset")
        return {"url": url, "words": len(url) * 10}


async def main(engine: Engine | None = None, clock: FakeClock | None = None) -> WorkflowRun:
    """Fetch every page in one step (retried once), then sum their words."""
    engine = engine or Engine("memory://")
    site = Site()

    async def fetch_all(ctx: StepContext) -> list[dict[str, Any]]:
        print(f"fetch_all attempt {ctx.attempt}")
        return await ctx.map(site.fetch, ctx.input["pages"], concurrency=3)

    async def total(ctx: StepContext) -> dict[str, int]:
        pages = ctx.get_output("fetch_all")
        return {"pages": len(pages), "words": sum(p["words"] for p in pages)}

    async with engine:
        crawl = engine.workflow(
            "crawl-site",
            steps={"fetch_all": StepConfig(fetch_all, retry_delay=0.5), "total": total},
        )
        run = await crawl.start({"pages": PAGES})
        if clock is not None:
            for _ in range(20):  # tests: let the retry's delay pass on the fake clock
                await clock.advance(0.5)
                await asyncio.sleep(0.02)
        done = await crawl.wait_for(run.id, timeout=10)

    twice = sorted(url for url, n in site.fetches.items() if n > 1)
    print(f"fetched {sum(site.fetches.values())} times for {len(PAGES)} pages; again: {twice}")
    print(f"run {done.status}: {done.output}")
    return done


if __name__ == "__main__":
    asyncio.run(main())
