"""``Watchers``: callers waiting for a run to change in this process (``wait_for``).

Bottom of the runtime: imports nothing of streamline_core. A local change
wakes them at once; a change made elsewhere is seen when they re-read.
"""

from __future__ import annotations

import asyncio

__all__ = ["Watchers"]


class Watchers:
    """Futures by run id, resolved when this engine changes that run."""

    def __init__(self) -> None:
        self._futures: dict[str, list[asyncio.Future[None]]] = {}

    def notify(self, run_id: str) -> None:
        """Wake everyone watching ``run_id``."""
        for fut in self._futures.pop(run_id, ()):
            if not fut.done():
                fut.set_result(None)

    async def watch(self, run_id: str, seconds: float) -> None:
        """Wait until this engine changes ``run_id`` locally, or ``seconds`` (real) pass."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(run_id, []).append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), seconds)
        except TimeoutError:
            pass
        finally:
            waiters = self._futures.get(run_id)
            if waiters and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    del self._futures[run_id]
