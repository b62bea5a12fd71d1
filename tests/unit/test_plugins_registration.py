"""Plugin registration rules."""

from __future__ import annotations

from typing import Any

import pytest

from streamline_core import Engine, ValidationError, hookimpl
from streamline_testing import InMemoryStore


def test_an_async_firstresult_policy_is_refused_naming_the_hook() -> None:
    class AsyncPolicy:
        @hookimpl
        async def streamline_retry_delay(
            self, run: Any, step: Any, config: Any, attempt: int, error: BaseException
        ) -> float:
            return 1.0

    with pytest.raises(ValidationError, match="streamline_retry_delay"):
        Engine(InMemoryStore(), plugins=[AsyncPolicy()])


def test_an_unknown_hook_is_refused() -> None:
    class Typo:
        @hookimpl
        def streamline_evnt(self, event: Any) -> None: ...

    with pytest.raises(ValidationError, match="streamline_evnt"):
        Engine(InMemoryStore(), plugins=[Typo()])


def test_each_engine_has_its_own_plugin_manager() -> None:
    a = Engine(InMemoryStore())
    b = Engine(InMemoryStore())
    assert a.plugins.pm is not b.plugins.pm
