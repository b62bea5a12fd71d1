"""Checkpoints: a long step saves its progress and picks up where it left off.

Shows ``ctx.checkpoint(value)`` (one durable write) and
``ctx.last_checkpoint`` (``None`` at first): a crawl of 10 pages saves the
next page number after each one. The first attempt fails at page 6; the
retry starts from the checkpoint instead of page 0. The checkpoint is kept
across attempts and recoveries (a crashed worker's successor sees it too)
and cleared when the step completes. The original library's name is
``checkpoint``.

Run it:

    python docs/examples/checkpoints.py
"""

from __future__ import annotations

import asyncio

from streamline_core import Engine, StepConfig, StepContext, WorkflowRun
from streamline_testing import FakeClock


async def main(engine: Engine | None = None, clock: FakeClock | None = None) -> WorkflowRun:
    """Crawl 10 pages in one step that fails once half way; return the finished run."""
    engine = engine or Engine("memory://")
    crawled: list[int] = []

    async def crawl(ctx: StepContext) -> dict[str, int]:
        page = ctx.last_checkpoint or 0
        print(f"attempt {ctx.attempt} starts at page {page}")
        while page < 10:
            crawled.append(page)  # in production: fetch and store the page
            page += 1
            await ctx.checkpoint(page)
            if page == 6 and ctx.attempt == 1:
                raise ConnectionError("the site went away")
        return {"pages": page}

    async with engine:
        wf = engine.workflow("crawler", steps={"crawl": StepConfig(crawl, retry_delay=0.5)})
        run = await wf.start()
        if clock is not None:
            for _ in range(20):  # tests: let the retry's delay pass on the fake clock
                await clock.advance(0.5)
                await asyncio.sleep(0.01)
        done = await wf.wait_for(run.id, timeout=10)

    print(f"pages crawled: {crawled} (none twice)")
    print(f"run {done.status}: {done.output}; checkpoint now {done.steps[0].checkpoint}")
    return done


if __name__ == "__main__":
    asyncio.run(main())
