"""A store written against the protocol before ``write_id`` is refused when the engine is built."""

from __future__ import annotations

from typing import Any

import pytest

from streamline_core import Engine, ValidationError
from streamline_core.run import WorkflowRun
from streamline_testing import InMemoryStore


class OldTransition(InMemoryStore):
    async def transition(  # type: ignore[override]
        self, run_id: str, expected_revision: int, patch: Any, owner: str | None = None
    ) -> WorkflowRun:
        return await super().transition(run_id, expected_revision, patch, owner)


class OldCreate(InMemoryStore):
    async def create(self, run: WorkflowRun) -> tuple[WorkflowRun, bool]:  # type: ignore[override]
        return await super().create(run)


class Delegating:
    """A wrapper that forwards everything (``**kwargs``) is accepted."""

    def __init__(self) -> None:
        self.inner = InMemoryStore()

    async def create(self, *args: Any, **kwargs: Any) -> Any:
        return await self.inner.create(*args, **kwargs)

    async def transition(self, *args: Any, **kwargs: Any) -> Any:
        return await self.inner.transition(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("store_class", [OldTransition, OldCreate])
def test_a_store_without_write_ids_is_refused_with_the_reason(store_class: type) -> None:
    with pytest.raises(ValidationError, match="write_id"):
        Engine(store_class(), load_entry_point_plugins=False)


def test_current_and_forwarding_stores_are_accepted() -> None:
    Engine(InMemoryStore(), load_entry_point_plugins=False)
    Engine(Delegating(), load_entry_point_plugins=False)  # type: ignore[arg-type]
