"""``streamline runs show`` lists a step's checkpoint (abbreviated) and the saga's state."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from streamline_cli import app
from streamline_core import Engine, NonRetriableError, StepConfig, StepContext

runner = CliRunner(env={"COLUMNS": "200"})


async def crawl(ctx: StepContext) -> None:
    await ctx.checkpoint({"page": 7, "cursor": "x" * 200})
    await ctx.wait("look at page 7")


async def fetch_all(ctx: StepContext) -> list[int]:
    async def one(x: int) -> int:
        if x == 3:
            raise ConnectionError("item 3 is down")
        return x

    return await ctx.map(one, range(5), concurrency=1)


async def boom(ctx: StepContext) -> None:
    raise NonRetriableError("no courier")


async def undo(ctx: StepContext) -> None:
    return None


def seed(url: str) -> list[str]:
    async def go() -> list[str]:
        engine = Engine(url, load_entry_point_plugins=False)
        ids = []
        for name, steps in (
            ("crawl", {"crawl": crawl}),
            ("fetch", {"fetch": StepConfig(fetch_all, retry_delay=60)}),
            ("order", {"charge": StepConfig(lambda ctx: "C1", compensate=undo), "ship": boom}),
        ):
            wf = engine.workflow(name, steps=steps)
            run = await wf.start()
            for _ in range(3):
                await wf.execute(run.id)
            ids.append(run.id)
        await engine.shutdown()
        return ids

    return asyncio.run(go())


def test_show_lists_checkpoints_and_compensation(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    crawl_id, fetch_id, order_id = seed(url)

    shown = runner.invoke(app, ["runs", "show", crawl_id, "--store", url])
    assert shown.exit_code == 0, shown.output
    assert "checkpoint {'page': 7, 'cursor': 'xxx" in shown.output
    assert "x" * 100 not in shown.output  # abbreviated

    shown = runner.invoke(app, ["runs", "show", fetch_id, "--store", url])
    assert shown.exit_code == 0, shown.output
    assert "checkpoint: map 3/5 items done" in shown.output

    shown = runner.invoke(app, ["runs", "show", order_id, "--store", url])
    assert shown.exit_code == 0, shown.output
    assert "compensation done" in shown.output
