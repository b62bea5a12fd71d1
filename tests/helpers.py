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
