"""``streamline runs migrate`` and ``streamline runs fork`` (they load the app: ``--app``)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streamline_cli import app
from streamline_core import Engine, RunStatus

runner = CliRunner(env={"COLUMNS": "200"})

APP = """
from streamline_core import Engine, NonRetriableError

engine = Engine(load_entry_point_plugins=False)

async def ask(ctx):
    await ctx.wait("ok?")

def declined(ctx):
    raise NonRetriableError("declined")

engine.workflow("order", steps={"a": lambda ctx: "A", "b": ask}, version="1")
engine.workflow(
    "order", steps={"a": lambda ctx: "A2", "approve": ask, "c": lambda ctx: "C"}, version="2"
)
engine.workflow("pay", steps={"reserve": lambda ctx: "R", "charge": declined}, version="1")
engine.workflow(
    "pay", steps={"reserve": lambda ctx: "R2", "charge": lambda ctx: "paid"}, version="2"
)
"""


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "versions_app.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("STREAMLINE_STORE", url)  # restored afterwards (--store sets it too)
    return url


def _invoke(url: str, *args: str) -> Any:
    sys.modules.pop("versions_app", None)  # each command is a fresh process: a fresh engine
    return runner.invoke(app, [*args, "--app", "versions_app:engine", "--store", url])


def _engine(url: str) -> Engine:
    engine = Engine(url, load_entry_point_plugins=False)
    engine.workflow("order", steps={"a": lambda ctx: "A", "b": _ask}, version="1")
    engine.workflow("pay", steps={"reserve": lambda ctx: "R", "charge": _declined}, version="1")
    return engine


async def _ask(ctx: Any) -> None:
    await ctx.wait("ok?")


def _declined(ctx: Any) -> None:
    from streamline_core import NonRetriableError

    raise NonRetriableError("declined")


def _waiting_order(url: str) -> str:
    async def go() -> str:
        engine = _engine(url)
        wf = engine.get_workflow("order", "1")
        run = await wf.start()
        await wf.execute(run.id)
        await engine.shutdown()
        return run.id

    return asyncio.run(go())


def _get(url: str, run_id: str) -> Any:
    async def go() -> Any:
        engine = Engine(url, load_entry_point_plugins=False)
        run = await engine.runs.get(run_id)
        await engine.shutdown()
        return run

    return asyncio.run(go())


def test_migrate_moves_a_waiting_run_with_a_step_map(url: str) -> None:
    run_id = _waiting_order(url)
    result = _invoke(url, "runs", "migrate", run_id, "--to-version", "2", "--map", "b=approve")
    assert result.exit_code == 0, result.output
    assert f"migrated {run_id} to order v2: waiting at step 'approve'" in result.output
    run = _get(url, run_id)
    assert (run.workflow_version, run.current_step_id) == ("2", "approve")
    assert [s.output for s in run.steps[:1]] == ["A"]


def test_migrate_refuses_an_unmapped_cursor_a_bad_map_and_a_bad_version(url: str) -> None:
    run_id = _waiting_order(url)
    unmapped = _invoke(url, "runs", "migrate", run_id, "--to-version", "2")
    assert unmapped.exit_code == 2
    assert "no counterpart" in unmapped.output
    malformed = _invoke(url, "runs", "migrate", run_id, "--to-version", "2", "--map", "b")
    assert malformed.exit_code == 2
    assert "is not OLD=NEW" in malformed.output
    unknown = _invoke(url, "runs", "migrate", run_id, "--to-version", "9", "--map", "b=approve")
    assert unknown.exit_code == 1
    assert "no registered version '9'" in unknown.output
    missing = _invoke(url, "runs", "migrate", "nope", "--to-version", "2")
    assert missing.exit_code == 1
    for result in (unmapped, malformed, unknown, missing):
        assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert _get(url, run_id).workflow_version == "1"


def test_migrate_without_a_run_moves_every_run_of_a_version(url: str) -> None:
    ids = [_waiting_order(url), _waiting_order(url)]
    result = _invoke(
        url,
        "runs",
        "migrate",
        "--workflow",
        "order",
        "--from-version",
        "1",
        "--to-version",
        "2",
        "--map",
        "b=approve",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"migrated": 2}
    assert [_get(url, i).workflow_version for i in ids] == ["2", "2"]
    neither = _invoke(url, "runs", "migrate", "--to-version", "2")
    assert neither.exit_code == 2


def test_fork_starts_a_new_run_on_the_latest_version(url: str) -> None:
    async def failed() -> str:
        engine = _engine(url)
        wf = engine.get_workflow("pay", "1")
        run = await wf.start()
        await wf.execute(run.id)
        await engine.shutdown()
        return run.id

    source = asyncio.run(failed())
    result = _invoke(url, "runs", "fork", source, "--from-step", "charge", "--json")
    assert result.exit_code == 0, result.output
    fork = json.loads(result.output)
    assert fork["workflow_version"] == "2"
    assert fork["meta"] == {"forked_from": source}
    assert fork["current_step_id"] == "charge"
    assert fork["steps"][0]["output"] == "R"
    assert _get(url, source).status == RunStatus.FAILED

    bad_step = _invoke(url, "runs", "fork", source, "--from-step", "nope")
    assert bad_step.exit_code == 1
    assert "no step 'nope'" in bad_step.output
    missing = _invoke(url, "runs", "fork", "nope", "--from-step", "charge")
    assert missing.exit_code == 1
    assert "not found" in missing.output
