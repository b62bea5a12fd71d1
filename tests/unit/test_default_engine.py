"""The original library's module-level form: create_workflow / configure / default_engine."""

from __future__ import annotations

import pytest

import streamline_core.defaults as defaults_module
from streamline_core import (
    RunStatus,
    StepContext,
    configure,
    create_workflow,
    default_engine,
)
from streamline_testing import FakeClock, InMemoryStore


async def test_create_workflow_runs_in_process_on_the_default_engine() -> None:
    clock = FakeClock()
    engine = configure(InMemoryStore(), clock=clock, load_entry_point_plugins=False)
    try:
        assert default_engine() is engine

        async def fetch(ctx: StepContext) -> dict[str, str]:
            return {"html": ctx.context["url"]}

        scraper = create_workflow(
            "web-scraper",
            steps={"fetch": fetch, "save": lambda ctx: {"saved": True}},
            context=lambda input: {"url": input["url"]},
            version="1.0.0",
        )
        run = await scraper.start({"url": "https://example.com"})
        done = await scraper.wait_for(run.id, timeout=10)
        assert done.status == RunStatus.DONE
        assert done.steps[0].output == {"html": "https://example.com"}
    finally:
        await engine.shutdown()
        defaults_module._default = None


def test_default_engine_is_built_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLINE_STORE", "memory://")
    monkeypatch.setattr(defaults_module, "_default", None)
    engine = default_engine()
    assert isinstance(engine.store, InMemoryStore)
    assert default_engine() is engine
