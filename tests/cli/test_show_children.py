"""``streamline runs show`` names a run's parent and lists its children."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from streamline_cli import app
from streamline_core import Engine, StepContext

runner = CliRunner(env={"COLUMNS": "200"})


async def ask(ctx: StepContext) -> None:
    await ctx.wait("Manager approval")


def seed(url: str) -> tuple[str, list[str]]:
    """A parent joining two children that wait for a person, the second detached."""

    async def go() -> tuple[str, list[str]]:
        engine = Engine(url, load_entry_point_plugins=False)
        engine.workflow("approval", steps={"ask": ask})

        async def fan(ctx: StepContext) -> None:
            await ctx.start_child("approval", {"n": 1})
            await ctx.start_child("approval", {"n": 2}, key="free", detached=True)
            await ctx.wait("children started")

        parent = engine.workflow("parent", steps={"fan": fan})
        run = await parent.start()
        await parent.execute(run.id)
        kids = await engine.runs.find(parent_run_id=run.id, sort="created_at")
        await engine.shutdown()
        return run.id, [k.id for k in kids.items]

    return asyncio.run(go())


def test_show_lists_a_runs_children_and_a_child_names_its_parent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    parent, kids = seed(url)
    assert len(kids) == 2
    shown = runner.invoke(app, ["runs", "show", parent, "--store", url])
    assert shown.exit_code == 0, shown.output
    assert "Child runs" in shown.output
    for kid in kids:
        assert kid in shown.output
    assert "approval (detached)" in shown.output
    child = runner.invoke(app, ["runs", "show", kids[0], "--store", url])
    assert child.exit_code == 0, child.output
    assert f"child of run {parent} (step fan)" in child.output
    as_json = runner.invoke(app, ["runs", "show", parent, "--store", url, "--json"])
    data = json.loads(as_json.output)
    assert [c["id"] for c in data["children"]] == kids
    assert {c["status"] for c in data["children"]} == {"running"}
    assert [c["detached"] for c in data["children"]] == [False, True]
