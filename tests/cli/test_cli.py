"""The ``streamline`` command: runs list/show/resume/cancel, exit codes, the demo."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamline_cli import app
from streamline_core import Engine, StepContext

runner = CliRunner(env={"COLUMNS": "200"})


async def ask(ctx: StepContext) -> None:
    await ctx.wait("Manager approval")


def seed(url: str) -> tuple[str, str]:
    """One run waiting for a person and one finished run."""

    async def go() -> tuple[str, str]:
        engine = Engine(url, load_entry_point_plugins=False)
        wf = engine.workflow("approval", steps={"ask": ask, "pay": lambda ctx: "paid"})
        waiting = await wf.start({"amount": 5})
        await wf.execute(waiting.id)
        finished = await wf.start()
        await wf.execute(finished.id)
        await wf.resume(finished.id, {"by": "x"})
        await wf.execute(finished.id)
        await engine.shutdown()
        return waiting.id, finished.id

    return asyncio.run(go())


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_list_and_show(url: str) -> None:
    waiting, finished = seed(url)
    listed = runner.invoke(app, ["runs", "list", "--store", url])
    assert listed.exit_code == 0, listed.output
    assert waiting in listed.output
    assert finished in listed.output
    only_done = runner.invoke(app, ["runs", "list", "--store", url, "--status", "done"])
    assert finished in only_done.output
    assert waiting not in only_done.output
    shown = runner.invoke(app, ["runs", "show", waiting, "--store", url])
    assert shown.exit_code == 0, shown.output
    assert "Manager approval" in shown.output
    assert "ask" in shown.output


def test_resume_and_cancel(url: str) -> None:
    waiting, finished = seed(url)
    resumed = runner.invoke(
        app, ["runs", "resume", waiting, "--store", url, "--payload", '{"ok": 1}']
    )
    assert resumed.exit_code == 0, resumed.output
    again = runner.invoke(app, ["runs", "resume", waiting, "--store", url])
    assert again.exit_code == 1
    cancelled = runner.invoke(app, ["runs", "cancel", waiting, "--store", url, "--reason", "test"])
    assert cancelled.exit_code == 0, cancelled.output
    assert runner.invoke(app, ["runs", "cancel", finished, "--store", url]).exit_code == 1


def test_errors_are_one_line_with_exit_codes(url: str) -> None:
    waiting, _ = seed(url)
    unknown = runner.invoke(app, ["runs", "show", "nope", "--store", url])
    assert unknown.exit_code == 1
    assert "not found" in unknown.output
    assert "Traceback" not in unknown.output
    bad_json = runner.invoke(app, ["runs", "resume", waiting, "--store", url, "--payload", "{x"])
    assert bad_json.exit_code == 2
    assert "not valid JSON" in bad_json.output
    bad_store = runner.invoke(app, ["runs", "list", "--store", "nosuch://x"])
    assert bad_store.exit_code == 2
    assert runner.invoke(app, ["runs", "frobnicate"]).exit_code == 2


def test_store_from_the_environment(url: str) -> None:
    waiting, _ = seed(url)
    listed = runner.invoke(app, ["runs", "list"], env={"STREAMLINE_STORE": url, "COLUMNS": "200"})
    assert waiting in listed.output


def test_the_demo_survives_a_sigkill(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "120"}
    result = subprocess.run(
        [sys.executable, "-m", "streamline_cli", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SIGKILL worker-1" in result.stdout
    assert "recovered" in result.stdout
    assert "reserve×1, charge×2, ship×1" in result.stdout
    assert result.stdout.count(" done ") >= 4
