"""pytest plugin: ``pytest_plugins = ["streamline_testing.pytest_plugin"]``.

Fixtures:

``fake_clock``
    A fresh :class:`~streamline_testing.FakeClock`.
``memory_store``
    A fresh :class:`~streamline_testing.InMemoryStore`.
``engine``
    An :class:`~streamline_core.Engine` on both, not started: a client.
    Start it yourself (``async with engine:``) to run steps.
``worker_engine``
    The same engine, started before the test body runs and shut down after
    it, on the test's own event loop: registered workflows run at once.
    Needs an ``async def`` test run by this plugin (see below).

Async tests
    The plugin runs ``async def`` tests itself, each on a fresh event loop,
    so plain ``pytest`` works with nothing else installed or configured.
    Tests marked for another runner (``@pytest.mark.asyncio`` for
    pytest-asyncio, including its auto mode, or ``@pytest.mark.anyio``)
    are left to it. The plugin does not run async *fixtures*: write your
    own fixtures as plain functions (the ones above are), or use
    pytest-asyncio for those tests.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from streamline_core import Engine
from streamline_testing.fake_clock import FakeClock
from streamline_testing.memory_store import InMemoryStore

__all__ = ["fake_clock", "memory_store", "engine", "worker_engine", "pytest_pyfunc_call"]

_TO_START = pytest.StashKey[Engine]()
_OTHER_RUNNERS = ("asyncio", "anyio")


def _ours(item: pytest.Item) -> bool:
    """Whether this plugin runs the test: an ``async def`` no other async runner claimed."""
    function = getattr(item, "obj", None)
    if not inspect.iscoroutinefunction(function):
        return False
    return not any(item.get_closest_marker(name) for name in _OTHER_RUNNERS)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run an ``async def`` test on a fresh event loop (``worker_engine`` started around it)."""
    if not _ours(pyfuncitem):
        return None
    function: Callable[..., Coroutine[Any, Any, Any]] = pyfuncitem.obj
    names = inspect.signature(function).parameters
    kwargs = {name: pyfuncitem.funcargs[name] for name in names if name in pyfuncitem.funcargs}
    started = pyfuncitem.stash.get(_TO_START, None)

    async def run() -> None:
        if started is None:
            await function(**kwargs)
            return
        await started.start()
        try:
            await function(**kwargs)
        finally:
            await started.shutdown(timeout=5)

    with asyncio.Runner() as runner:
        runner.run(run())
    return True


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
    """An engine on ``memory_store`` and ``fake_clock``: a client, not started.

    Entry-point plugins are not loaded.
    """
    return Engine(memory_store, clock=fake_clock, load_entry_point_plugins=False)


@pytest.fixture
def worker_engine(request: pytest.FixtureRequest, engine: Engine) -> Engine:
    """``engine``, started for the test's body and shut down after it (``async def`` tests only)."""
    if not _ours(request.node):
        pytest.fail(
            "worker_engine is started on the test's event loop by "
            "streamline_testing.pytest_plugin, so it needs an unmarked `async def` test; "
            "in a test run by pytest-asyncio or anyio, use `async with engine:` instead",
            pytrace=False,
        )
    request.node.stash[_TO_START] = engine
    return engine
