"""``streamline schedules list | pause | unpause | trigger``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamline_cli import app
from streamline_core import Engine, StepContext

runner = CliRunner(env={"COLUMNS": "200"})

APP = """
from streamline_core import Engine

engine = Engine("{url}", load_entry_point_plugins=False)

async def work(ctx):
    return "ok"

report = engine.workflow("report", steps={{"work": work}})
engine.schedule("nightly", report, cron="0 2 * * *", timezone="Europe/Berlin")
"""


async def work(ctx: StepContext) -> str:
    return "ok"


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A store holding schedule ``nightly`` (stored as a worker stores it at start)."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"

    async def go() -> None:
        engine = Engine(url, load_entry_point_plugins=False)
        report = engine.workflow("report", steps={"work": work})
        engine.schedule("nightly", report, cron="0 2 * * *", timezone="Europe/Berlin")
        await engine.schedules.store_declared()
        await engine.shutdown()

    asyncio.run(go())
    return url


def test_list_shows_the_schedules(url: str) -> None:
    result = runner.invoke(app, ["schedules", "list", "--store", url])
    assert result.exit_code == 0, result.output
    assert "nightly" in result.output and "0 2 * * *" in result.output
    assert "Europe/Berlin" in result.output
    as_json = runner.invoke(app, ["schedules", "list", "--store", url, "--json"])
    [info] = json.loads(as_json.output)
    assert (info["name"], info["workflow"], info["paused"]) == ("nightly", "report", False)


def test_pause_and_unpause_work_from_the_store_alone(url: str) -> None:
    paused = runner.invoke(app, ["schedules", "pause", "nightly", "--store", url])
    assert paused.exit_code == 0, paused.output
    listed = runner.invoke(app, ["schedules", "list", "--store", url, "--json"])
    assert json.loads(listed.output)[0]["paused"] is True
    unpaused = runner.invoke(app, ["schedules", "unpause", "nightly", "--store", url])
    assert unpaused.exit_code == 0, unpaused.output
    listed = runner.invoke(app, ["schedules", "list", "--store", url, "--json"])
    assert json.loads(listed.output)[0]["paused"] is False


def test_an_unknown_schedule_exits_1_with_one_line(url: str) -> None:
    result = runner.invoke(app, ["schedules", "pause", "nope", "--store", url])
    assert result.exit_code == 1
    assert "nope" in result.output and "Traceback" not in result.output


def test_trigger_starts_a_run_through_the_app(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sched_app.py").write_text(APP.format(url=url))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("sched_app", None)
    result = runner.invoke(
        app, ["schedules", "trigger", "nightly", "--app", "sched_app:engine", "--store", url]
    )
    assert result.exit_code == 0, result.output
    run_id = result.output.split()[-1]

    async def read() -> dict[str, str]:
        engine = Engine(url, load_entry_point_plugins=False)
        run = await engine.runs.get(run_id)
        await engine.shutdown()
        assert run is not None
        return dict(run.meta)

    meta = asyncio.run(read())
    assert meta["schedule"] == "nightly" and meta["trigger"] == "manual"
