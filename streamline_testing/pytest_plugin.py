"""pytest plugin: ``pytest_plugins = ["streamline_testing.pytest_plugin"]``.

Fixtures:

``fake_clock``
    A fresh :class:`~streamline_testing.FakeClock`.
``memory_store``
    A fresh :class:`~streamline_testing.InMemoryStore`.
``engine``
    An :class:`~streamline_core.Engine` on both (not started; use
    ``async with engine:`` inside an async test, or ``await engine.start()``).

The fixtures are synchronous, so they work with any async test runner
(pytest-asyncio, anyio, or ``asyncio.run`` in a plain test).
"""

from __future__ import annotations

import pytest

from streamline_core import Engine
from streamline_testing.fake_clock import FakeClock
from streamline_testing.memory_store import InMemoryStore

__all__ = ["fake_clock", "memory_store", "engine"]


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fake clock starting at 2030-01-01T00:00:00Z."""
    return FakeClock()


@pytest.fixture
def memory_store() -> InMemoryStore:
    """An empty in-memory store."""
    return InMemoryStore()


@pytest.fixture
def engine(memory_store: InMemoryStore, fake_clock: FakeClock) -> Engine:
    """An engine on ``memory_store`` and ``fake_clock`` (entry-point plugins not loaded)."""
    return Engine(memory_store, clock=fake_clock, load_entry_point_plugins=False)
