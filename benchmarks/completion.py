"""Knowing when a run ended from the engine's own events, so a harness adds no store reads."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from streamline_core import Engine, Event

__all__ = ["run_endings"]


def run_endings(engine: Engine) -> Callable[[str], asyncio.Future[None]]:
    """Subscribe to ``engine``'s end events; return ``ended(run_id)``, a future per run.

    The future may be asked for before or after the run ended; it is done
    once the run completed or failed.
    """
    ended: dict[str, asyncio.Future[None]] = {}

    def waiter(run_id: str) -> asyncio.Future[None]:
        return ended.setdefault(run_id, asyncio.get_running_loop().create_future())

    def on_end(event: Event) -> None:
        future = waiter(str(event.run_id))
        if not future.done():
            future.set_result(None)

    engine.on("workflow:completed", on_end)
    engine.on("workflow:failed", on_end)
    return waiter
