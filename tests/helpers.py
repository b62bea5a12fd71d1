"""Test helpers: a store wrapper that counts operations."""

from __future__ import annotations

import inspect
from collections import Counter
from typing import Any

from streamline_core.store import Store


class CountingStore:
    """Wraps a store and counts each operation by name."""

    WRITES = ("create", "claim", "transition", "delete")

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.claimed = 0

    @property
    def writes(self) -> int:
        """Writes that changed something: creates, transitions, and claims that leased a run."""
        return self.calls["create"] + self.calls["transition"] + self.claimed + self.calls["delete"]

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr  # attributes and plain methods (use_caller_clock) pass through

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            result = await attr(*args, **kwargs)
            if name == "claim":
                self.claimed += len(result)
            return result

        return call


async def settle_until(env: Any, check: Any, rounds: int = 200) -> None:
    """Settle ``env`` until ``await check()`` is true (bounded; no fake time passes).

    For a test that needs the engine to reach a state (a step waiting on a
    gate, a retry scheduled) before it acts, even on a loaded machine.
    """
    for _ in range(rounds):
        await env.settle()
        if await check():
            return
    raise AssertionError(f"never reached: {getattr(check, '__name__', check)}")


def stored(env: Any, run_id: str, test: Any) -> Any:
    """A ``settle_until`` check: ``test(run)`` holds for the run as stored."""

    async def check() -> bool:
        run = await env.store.get(run_id)
        return run is not None and bool(test(run))

    return check
