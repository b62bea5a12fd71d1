"""How a clause is written: a self-driving test method over fresh, guarded stores.

Shared by :mod:`contract` and :mod:`limits`, so clause modules can be split
without importing each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from streamline_testing.conformance._support import GuardedStore
from streamline_testing.conformance.harness import StoreHarness

__all__ = ["Stores", "clause", "clause_names"]

_CLAUSE_MARK = "__streamline_conformance_clause__"
_H = TypeVar("_H", bound=StoreHarness)


@dataclass(frozen=True, slots=True)
class Stores:
    """The handles a clause works with (guarded).

    Attributes:
        all: The first handle, then the second one when the harness has
            ``Capabilities.second_handle``.
    """

    all: tuple[GuardedStore, ...]

    @property
    def main(self) -> GuardedStore:
        """The first handle."""
        return self.all[0]

    def pick(self, i: int) -> GuardedStore:
        """Handle number ``i``, round robin (spreads racing callers over connections)."""
        return self.all[i % len(self.all)]


async def _drive(harness: StoreHarness, body: Callable[[Stores], Awaitable[None]]) -> None:
    raw = [await harness.make_store()]
    try:
        if harness.capabilities.second_handle:
            raw.append(await harness.another_handle(raw[0]))
        await body(Stores(tuple(GuardedStore(s) for s in raw)))
    finally:
        for store in reversed(raw):
            await harness.dispose(store)


def clause(body: Callable[[_H, Stores], Coroutine[Any, Any, None]]) -> Callable[[_H], None]:
    """Turn an async clause body into a plain, self-driving test method.

    The returned method takes no arguments (so pytest asks for no fixtures),
    makes a fresh store with the harness, runs ``body`` on a new event loop
    and disposes of the store.
    """

    def test(self: _H) -> None:
        async def bound(stores: Stores) -> None:
            await body(self, stores)

        asyncio.run(_drive(self, bound))

    test.__name__ = body.__name__
    test.__qualname__ = body.__qualname__
    test.__doc__ = body.__doc__
    test.__module__ = body.__module__
    setattr(test, _CLAUSE_MARK, True)
    return test


def clause_names(cls: type[Any]) -> list[str]:
    """The clause methods of ``cls`` (a ``StoreContract`` subclass), in definition order."""
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if getattr(value, _CLAUSE_MARK, False) and name not in names:
                names.append(name)
    return names
