"""Store selection by URL: entry points, $STREAMLINE_STORE, the embedded default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import streamline_core._store_url as store_url
from streamline_core import Engine, ValidationError
from streamline_sqlite import SQLiteStore
from streamline_testing import InMemoryStore


async def test_the_default_store_is_sqlite_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STREAMLINE_STORE", raising=False)
    engine = Engine()
    assert engine.store_url == "sqlite:///./streamline.db"
    assert isinstance(engine.store, SQLiteStore)
    wf = engine.workflow("w", steps={"a": lambda ctx: 1})
    await wf.start()
    await engine.shutdown()
    assert (tmp_path / "streamline.db").exists()


def test_the_environment_chooses_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLINE_STORE", "memory://")
    assert isinstance(Engine().store, InMemoryStore)


def test_a_third_party_scheme_comes_from_an_entry_point(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    class FakeEntryPoint:
        name = "acme"

        def load(self) -> Any:
            def factory(url: str) -> InMemoryStore:
                made.append(url)
                return InMemoryStore("acme")

            return factory

    real = store_url.entry_points

    def fake_entry_points(*, group: str) -> Any:
        found = list(real(group=group))
        return [*found, FakeEntryPoint()] if group == "streamline.stores" else found

    monkeypatch.setattr(store_url, "entry_points", fake_entry_points)
    engine = Engine("acme://cluster-1/runs")
    assert made == ["acme://cluster-1/runs"]
    assert isinstance(engine.store, InMemoryStore)
    with pytest.raises(ValidationError, match="acme://"):
        Engine("nope://x")
