"""Helpers for the Mongo store tests: run builders and collection proxies.

Proxies wrap a driver collection behind a database wrapper, so a
``MongoStore`` under test talks to them exactly as it talks to a driver:

* :class:`RecordingCollection` records every call (name, args, kwargs), to
  check the update documents the store produces;
* :class:`YieldingCollection` awaits ``asyncio.sleep(0)`` before and after
  every call: mongomock-motor never yields to the event loop, so without it
  "concurrent" calls run one after another and race tests prove nothing;
* :class:`FailingCollection` raises a given exception from every call.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamline_core.run import StepState, WorkflowRun, new_run_id

LIVE_URL = os.environ.get("STREAMLINE_TEST_MONGO_URL") or None
"""A live MongoDB server to test against, or ``None`` for mongomock-motor."""

T0 = datetime(2030, 1, 1, tzinfo=UTC)
"""Far in the future, so mongomock's wall-clock TTL enforcement never fires."""

WF = "wf"


def make_run(**fields: Any) -> WorkflowRun:
    """A valid run: running, due at ``T0``, two pending steps; ``fields`` override."""
    base: dict[str, Any] = {
        "id": new_run_id(),
        "workflow_id": WF,
        "created_at": T0,
        "updated_at": T0,
        "next_run_at": T0,
        "current_step_id": "a",
        "steps": [StepState(step_id="a"), StepState(step_id="b")],
    }
    base.update(fields)
    return WorkflowRun.model_validate(base)


@dataclass
class Call:
    """One recorded collection call."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class _CursorProxy:
    def __init__(self, cursor: Any, before: Callable[[], Any], after: Callable[[], Any]) -> None:
        self._cursor = cursor
        self._before = before
        self._after = after

    async def to_list(self, length: int | None = None) -> list[Any]:
        await self._before()
        try:
            return list(await self._cursor.to_list(length))
        finally:
            await self._after()


class CollectionProxy:
    """Forwards every method to ``inner``, with hooks around awaited calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def before(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Runs before each call."""

    async def after(self, name: str) -> None:
        """Runs after each call (also when it raised)."""

    def find(self, *args: Any, **kwargs: Any) -> _CursorProxy:
        cursor = self.inner.find(*args, **kwargs)

        async def before() -> None:
            await self.before("find", args, kwargs)

        async def after() -> None:
            await self.after("find")

        return _CursorProxy(cursor, before, after)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self.before(name, args, kwargs)
            try:
                return await target(*args, **kwargs)
            finally:
                await self.after(name)

        return call


class RecordingCollection(CollectionProxy):
    """Records every call in :attr:`calls`."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.calls: list[Call] = []

    async def before(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.append(Call(name, args, dict(kwargs)))

    def named(self, *names: str) -> list[Call]:
        """The recorded calls to any of ``names``."""
        return [c for c in self.calls if c.name in names]


@dataclass
class InFlight:
    """How many proxied calls were in progress at once (shared by proxies)."""

    now: int = 0
    most: int = 0


class YieldingCollection(CollectionProxy):
    """Yields to the event loop around every call, so races really interleave.

    ``tracker.most > 1`` afterwards proves that calls overlapped; pass one
    tracker to several proxies to see overlap across stores.
    """

    def __init__(self, inner: Any, tracker: InFlight | None = None) -> None:
        super().__init__(inner)
        self.tracker = tracker if tracker is not None else InFlight()

    async def before(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        self.tracker.now += 1
        self.tracker.most = max(self.tracker.most, self.tracker.now)
        await asyncio.sleep(0)

    async def after(self, name: str) -> None:
        await asyncio.sleep(0)
        self.tracker.now -= 1
        await asyncio.sleep(0)


class FailingCollection(CollectionProxy):
    """Raises ``error`` from every call, or only from the methods in ``only``
    (``find`` fails when its cursor is drained)."""

    def __init__(
        self, inner: Any, error: BaseException, only: frozenset[str] | None = None
    ) -> None:
        super().__init__(inner)
        self.error = error
        self.only = only

    async def before(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.only is None or name in self.only:
            raise self.error


class WrappedDatabase:
    """A database whose ``get_collection`` wraps the driver's collection."""

    def __init__(self, db: Any, wrap: Callable[[Any], Any]) -> None:
        self.inner = db
        self.wrap = wrap
        self.wrapped: list[Any] = []

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def get_collection(self, name: str, **options: Any) -> Any:
        proxy = self.wrap(self.inner.get_collection(name, **options))
        self.wrapped.append(proxy)
        return proxy

    @property
    def proxy(self) -> Any:
        """The proxy of the (only) collection the store took."""
        return self.wrapped[-1]
