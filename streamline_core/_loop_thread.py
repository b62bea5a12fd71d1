"""``LoopThread``: a private event loop on a daemon thread, for callers that are not async.

Model layer: imports ``errors`` only. ``engine.sync`` runs every call on it,
so a sync web view (Flask, Django) or a script can use an engine without an
event loop of its own. The thread is a daemon: it never keeps the process
alive.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from streamline_core.errors import InvalidStateError

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """Runs coroutines to completion on one background loop, started on first use."""

    def __init__(self, name: str = "streamline-sync") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=serve, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the background loop and return its result (or raise its error).

        Raises:
            InvalidStateError: called from a running event loop (use the async API there).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise InvalidStateError(
                "engine.sync is for code without an event loop; inside async code, await the "
                "engine's own methods instead"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure())
        return future.result(timeout)

    def stop(self) -> None:
        """Stop the loop and join its thread (a later :meth:`run` starts a new one)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
