"""``runs pause/unpause/rewind/delete`` go through ``engine.runs``: no stand-in workflow."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streamline_cli import app
from streamline_core import Engine, RunStatus, StepConfig, StepContext

runner = CliRunner(env={"COLUMNS": "200"})


async def ask(ctx: StepContext) -> None:
    await ctx.wait("Manager approval")


async def boom(ctx: StepContext) -> None:
    raise RuntimeError("card declined")


def seed(url: str, tenant_id: str | None = None) -> dict[str, str]:
    """A waiting run, a done run and a failed run (of workflows the CLI never sees)."""

    async def go() -> dict[str, str]:
        engine = Engine(url, load_entry_point_plugins=False, tenant_id=tenant_id)
        approval = engine.workflow("approval", steps={"ask": ask, "pay": lambda ctx: "paid"})
        charge = engine.workflow("charge", steps={"charge": StepConfig(boom, retries=1)})
        waiting = await approval.start()
        await approval.execute(waiting.id)
        done = await approval.start()
        await approval.execute(done.id)
        await approval.resume(done.id, {"by": "x"})
        await approval.execute(done.id)
        failed = await charge.start()
        await charge.execute(failed.id)
        await engine.shutdown()
        return {"waiting": waiting.id, "done": done.id, "failed": failed.id}

    return asyncio.run(go())


def status_of(url: str, run_id: str) -> tuple[RunStatus, bool] | None:
    async def go() -> tuple[RunStatus, bool] | None:
        engine = Engine(url, load_entry_point_plugins=False)
        run = await engine.runs.get(run_id)
        await engine.shutdown()
        return None if run is None else (run.status, run.paused)

    return asyncio.run(go())


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'admin.db'}"


def refuse_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, registering a workflow fails the test: the CLI must not need one."""

    def refuse(self: Engine, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the CLI registered a workflow")

    monkeypatch.setattr(Engine, "workflow", refuse)


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def test_pause_unpause_rewind_need_no_definition(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = seed(url)
    refuse_registration(monkeypatch)
    waiting = runs["waiting"]

    paused = invoke("runs", "pause", waiting, "--store", url)
    assert paused.exit_code == 0, paused.output
    assert paused.output == f"paused {waiting} (waiting)\n"
    assert status_of(url, waiting) == (RunStatus.WAITING, True)
    unpaused = invoke("runs", "unpause", waiting, "--store", url)
    assert unpaused.exit_code == 0, unpaused.output
    assert status_of(url, waiting) == (RunStatus.WAITING, False)

    rewound = invoke("runs", "rewind", runs["failed"], "--step", "charge", "--store", url)
    assert rewound.exit_code == 0, rewound.output
    assert "rewound" in rewound.output and "now running" in rewound.output
    assert status_of(url, runs["failed"]) == (RunStatus.RUNNING, False)


def test_admin_commands_keep_their_exit_codes(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = seed(url)
    refuse_registration(monkeypatch)
    for args in (["pause", "nope"], ["unpause", "nope"], ["rewind", "nope", "--step", "a"]):
        result = invoke("runs", *args, "--store", url)
        assert result.exit_code == 1, result.output
        assert result.output == "error: run 'nope' not found\n"
    for command in ("pause", "unpause"):
        result = invoke("runs", command, runs["done"], "--store", url)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("error: ") and "done" in result.output
        assert len(result.output.splitlines()) == 1
    no_step = invoke("runs", "rewind", runs["done"], "--step", "zzz", "--store", url)
    assert no_step.exit_code == 1
    assert "no step 'zzz'" in no_step.output
    missing_step = invoke("runs", "rewind", runs["done"], "--store", url)
    assert missing_step.exit_code == 2


def test_delete_removes_only_the_named_finished_run(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = seed(url)
    others = seed(url)
    refuse_registration(monkeypatch)
    active = invoke("runs", "delete", runs["waiting"], "--store", url)
    assert active.exit_code == 1
    assert "only finished runs can be deleted" in active.output
    for name in ("done", "failed"):
        deleted = invoke("runs", "delete", runs[name], "--store", url)
        assert deleted.exit_code == 0, deleted.output
        assert deleted.output == f"deleted {runs[name]}\n"
        assert status_of(url, runs[name]) is None
    again = invoke("runs", "delete", runs["done"], "--store", url)
    assert again.exit_code == 1
    assert "not found" in again.output
    assert status_of(url, runs["waiting"]) == (RunStatus.WAITING, False)
    assert all(status_of(url, run_id) is not None for run_id in others.values())


def test_delete_a_tenant_run(url: str) -> None:
    runs = seed(url, tenant_id="acme")
    deleted = invoke("runs", "delete", runs["failed"], "--store", url)
    assert deleted.exit_code == 0, deleted.output
    assert status_of(url, runs["failed"]) is None
    assert status_of(url, runs["done"]) is not None


def test_prune_counts_with_dry_run_then_deletes_only_old_finished_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    ids = seed(url)
    kept = runner.invoke(
        app, ["runs", "prune", "--status", "done", "--older-than", "30d", "--store", url]
    )
    assert kept.exit_code == 0, kept.output
    assert "deleted 0 runs" in kept.output
    dry = runner.invoke(
        app,
        [
            "runs",
            "prune",
            "--status",
            "done,failed",
            "--older-than",
            "0s",
            "--dry-run",
            "--store",
            url,
        ],
    )
    assert dry.exit_code == 0, dry.output
    assert "would delete 2 runs" in dry.output
    gone = runner.invoke(
        app,
        [
            "runs",
            "prune",
            "--status",
            "done",
            "--status",
            "failed",
            "--older-than",
            "0",
            "--store",
            url,
        ],
    )
    assert gone.exit_code == 0, gone.output
    assert "deleted 2 runs" in gone.output

    async def left() -> list[str]:
        engine = Engine(url, load_entry_point_plugins=False)
        try:
            return [i for i in ids.values() if await engine.runs.get(i) is not None]
        finally:
            await engine.shutdown()

    assert asyncio.run(left()) == [ids["waiting"]]


@pytest.mark.parametrize(
    "args",
    [
        ["--status", "running", "--older-than", "1d"],
        ["--status", "done", "--older-than", "soon"],
        ["--status", "done", "--older-than", "-3d"],
        ["--status", "bogus", "--older-than", "1d"],
    ],
)
def test_prune_refuses_bad_input_in_one_line(tmp_path: Path, args: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    seed(url)
    result = runner.invoke(app, ["runs", "prune", *args, "--store", url])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
