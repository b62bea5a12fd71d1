"""``runs show`` says where a step failed: the tail of its traceback, all of it with --traceback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamline_cli import app
from streamline_cli.render import TRACEBACK_TAIL
from streamline_core import Engine, StepConfig, StepContext, WorkflowRun

wide = CliRunner(env={"COLUMNS": "200"})
narrow = CliRunner(env={"COLUMNS": "80"})

MESSAGE = "card declined for customer 42 \x1b[31m(the issuer said no, twice, at length)"


def reserve_inventory_for_the_order_and_hold_it(ctx: StepContext) -> str:
    return "held"


def first(n: int) -> None:
    second(n)


def second(n: int) -> None:
    third(n)


def third(n: int) -> None:
    fourth(n)


def fourth(n: int) -> None:
    raise ValueError(MESSAGE)


async def charge(ctx: StepContext) -> None:
    first(1)


async def ask(ctx: StepContext) -> None:
    await ctx.wait("Manager approval")


def seed(url: str) -> tuple[WorkflowRun, WorkflowRun]:
    """A run whose second step failed (its handler raised), and a cancelled run."""

    async def go() -> tuple[WorkflowRun, WorkflowRun]:
        engine = Engine(url, load_entry_point_plugins=False)
        wf = engine.workflow(
            "checkout",
            steps={
                "reserve": reserve_inventory_for_the_order_and_hold_it,
                "charge": StepConfig(charge, retries=1),
            },
        )
        failed = await wf.start()
        await wf.execute(failed.id)
        other = engine.workflow("approval", steps={"ask": ask})
        cancelled = await other.start()
        await other.execute(cancelled.id)
        await engine.runs.cancel(cancelled.id, "no longer needed")
        runs = [await engine.runs.get(failed.id), await engine.runs.get(cancelled.id)]
        await engine.shutdown()
        assert runs[0] is not None and runs[1] is not None
        return runs[0], runs[1]

    return asyncio.run(go())


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tb.db'}"


def stored_traceback(run: WorkflowRun, step_id: str) -> str:
    step = next(s for s in run.steps if s.step_id == step_id)
    assert step.error is not None and step.error.traceback is not None
    return step.error.traceback


def block_after(output: str, header: str) -> list[str]:
    """The lines printed after the line starting with ``header``."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    return lines[start + 1 :]


def test_show_prints_the_last_lines_of_a_failed_steps_traceback(url: str) -> None:
    failed, _ = seed(url)
    stored = stored_traceback(failed, "charge").rstrip("\n").splitlines()
    assert len(stored) > TRACEBACK_TAIL  # the test needs a traceback to cut

    shown = wide.invoke(app, ["runs", "show", failed.id, "--store", url])
    assert shown.exit_code == 0, shown.output
    assert "\x1b" not in shown.output  # a terminal escape in a message is shown, not sent
    block = block_after(shown.output, "step charge failed (attempt 1): STEP_FAILED: card declined")
    left_out = len(stored) - TRACEBACK_TAIL
    assert block[0] == f"    ... {left_out} earlier lines (--traceback shows them all)"
    expected = [line.replace("\x1b", "\\x1b") for line in stored[-TRACEBACK_TAIL:]]
    assert [line.removeprefix("    ") for line in block[1:]] == expected
    assert all(line.startswith("    ") for line in block[1:])
    assert block[-1] == "    ValueError: " + MESSAGE.replace("\x1b", "\\x1b")
    assert "Traceback (most recent call last):" not in shown.output
    assert "step reserve failed" not in shown.output  # only steps that raised


def test_traceback_flag_prints_all_of_it(url: str) -> None:
    failed, _ = seed(url)
    stored = stored_traceback(failed, "charge").rstrip("\n").splitlines()
    shown = wide.invoke(app, ["runs", "show", failed.id, "--store", url, "--traceback"])
    assert shown.exit_code == 0, shown.output
    block = block_after(shown.output, "step charge failed")
    expected = [line.replace("\x1b", "\\x1b") for line in stored]
    assert [line.removeprefix("    ") for line in block] == expected
    assert "earlier line" not in shown.output
    for frame in ("in charge", "in first", "in second", "in third", "in fourth"):
        assert frame in shown.output


@pytest.mark.parametrize("flags", [[], ["--traceback"]])
def test_the_traceback_stays_readable_at_80_columns(url: str, flags: list[str]) -> None:
    failed, _ = seed(url)
    shown = narrow.invoke(app, ["runs", "show", failed.id, "--store", url, *flags])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert all(len(line) <= 80 for line in lines), shown.output
    assert all(line == line.rstrip() for line in block_after(shown.output, "step charge"))
    block = block_after(shown.output, "step charge failed (attempt 1): STEP_FAILED: card")
    # Wrapped lines stay under their indent: the header's under 2, the traceback's under 4.
    assert block[0].startswith("  ") and not block[0].startswith("    "), shown.output
    assert all(line.startswith("    ") for line in block[1:]), shown.output
    assert any(line.startswith("    ValueError: card declined") for line in block)


def test_json_has_the_traceback_as_stored(url: str) -> None:
    failed, _ = seed(url)
    shown = wide.invoke(app, ["runs", "show", failed.id, "--store", url, "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    steps = {s["step_id"]: s for s in data["steps"]}
    assert steps["charge"]["error"]["traceback"] == stored_traceback(failed, "charge")
    assert steps["reserve"]["error"] is None
    with_flag = wide.invoke(
        app, ["runs", "show", failed.id, "--store", url, "--json", "--traceback"]
    )
    assert json.loads(with_flag.output) == data


def test_a_run_without_tracebacks_shows_none(url: str) -> None:
    _, cancelled = seed(url)
    shown = narrow.invoke(app, ["runs", "show", cancelled.id, "--store", url])
    assert shown.exit_code == 0, shown.output
    assert "failed (attempt" not in shown.output
    assert "Traceback" not in shown.output
    assert "no longer needed" in shown.output
