"""``streamline events emit``: with ``--app``, broadcasts start triggered workflows."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamline_cli import app
from streamline_core import Engine

runner = CliRunner(env={"COLUMNS": "200"})

APP = """
from streamline_core import Engine

engine = Engine("{url}", load_entry_point_plugins=False)

async def hold(ctx):
    await ctx.wait("hold")

engine.workflow("fulfil", steps={{"hold": hold}}, trigger="order.placed")
"""


def test_an_idempotency_key_makes_a_second_emit_start_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    (tmp_path / "events_app.py").write_text(APP.format(url=url))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    args = [
        "events",
        "emit",
        "order.placed",
        "--data",
        '{"order": 7}',
        "--app",
        "events_app:engine",
    ]
    for _ in range(2):
        sys.modules.pop("events_app", None)  # a fresh process each time: a fresh engine
        result = runner.invoke(app, [*args, "--idempotency-key", "evt-7", "--store", url])
        assert result.exit_code == 0, result.output
        assert "0 run(s) resumed" in result.output

    async def read() -> list[object]:
        engine = Engine(url, load_entry_point_plugins=False)
        page = await engine.runs.find(workflow_id="fulfil")
        await engine.shutdown()
        return [(r.input, r.idempotency_key) for r in page.items]

    assert asyncio.run(read()) == [({"order": 7}, "evt-7")]
