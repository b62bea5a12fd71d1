"""Waking idle workers from a change stream on the runs collection.

The optional Store operation ``wait_for_work`` (see ``streamline_core.store``)
on MongoDB: a task of the store watches the collection (``watch`` with
``fullDocument: "updateLookup"``) for inserts, updates and replacements that
leave a run active, unleased and unpaused, and wakes the waiters when that
run is due by the server's clock at the moment of the write (the event's
``wallTime``; every such run when the server reports none). It is a hint:
workers still claim with their own ``now`` and keep polling beside it.

Change streams need a replica set (or a sharded cluster). On a standalone
server, or a driver/double without ``watch`` (mongomock has none), the first
attempt fails for good and ``wait_for_work`` only sleeps its timeout and
returns ``False``: polling is the path. Any other failure (a network error, a
primary stepping down, an invalidated stream) closes the stream and it is
opened again after a backoff; meanwhile the waiters time out as they would
without it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from datetime import datetime
from typing import Any, Final

from pymongo.errors import OperationFailure

from ._documents import ACTIVE_MARK, utc_ms
from ._types import Document, MongoCollection

__all__ = ["ChangeWatcher", "WAKE_PIPELINE"]

log = logging.getLogger("streamline.mongo")

WAKE_PIPELINE: Final[list[Document]] = [
    {
        "$match": {
            "operationType": {"$in": ["insert", "update", "replace"]},
            f"fullDocument.{ACTIVE_MARK}": True,
            "fullDocument.lease": None,
            "fullDocument.paused": False,
            "fullDocument.next_run_at": {"$ne": None},
        }
    },
    # Only what the wake-up decision reads travels back.
    {"$project": {"wallTime": 1, "fullDocument.next_run_at": 1}},
]
"""The change stream's filter: writes that leave a run claimable (due or not yet)."""

_UNSUPPORTED_CODES: Final = frozenset(
    {
        40573,  # "The $changeStream stage is only supported on replica sets"
        115,  # CommandNotSupported
        303,  # NotImplemented (some MongoDB-compatible services)
    }
)
_BACKOFF_FIRST = 0.5
_BACKOFF_MOST = 30.0


def makes_due(change: Document) -> bool:
    """Whether a change event (through :data:`WAKE_PIPELINE`) left a run due."""
    full = change.get("fullDocument")
    if not isinstance(full, dict):
        return False
    due = full.get("next_run_at")
    if not isinstance(due, datetime):
        return False
    wall = change.get("wallTime")
    if not isinstance(wall, datetime):
        return True  # a server before 6.0 reports no wall time: wake, the claim decides
    return utc_ms(due) <= utc_ms(wall)


def _unsupported(exc: BaseException) -> bool:
    if isinstance(exc, (NotImplementedError, TypeError, AttributeError)):
        return True  # no watch() at all (mongomock's collection calls a missing method)
    return isinstance(exc, OperationFailure) and exc.code in _UNSUPPORTED_CODES


class ChangeWatcher:
    """One change stream per store, started by the first ``wait``; see the module docstring."""

    def __init__(self, collection: MongoCollection) -> None:
        self._collection = collection
        self._due: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.unsupported = False
        """Set for good once the deployment turned change streams down (polling only)."""
        self.opened = 0
        """How many times a stream was opened (for tests and diagnostics)."""

    async def wait(self, timeout: float) -> bool:
        """``True`` as soon as a run may have become due, ``False`` after ``timeout`` s."""
        if self.unsupported:
            await asyncio.sleep(max(0.0, timeout))
            return False
        due = self._start()
        if not due.is_set():
            try:
                await asyncio.wait_for(due.wait(), timeout)
            except TimeoutError:
                return False
        due.clear()
        return True

    def _start(self) -> asyncio.Event:
        if self._due is None:
            self._due = asyncio.Event()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(self._due), name="streamline-mongo-watch")
        return self._due

    async def _watch(self, due: asyncio.Event) -> None:
        backoff = _BACKOFF_FIRST
        while True:
            try:
                stream: Any = self._collection.watch(WAKE_PIPELINE, full_document="updateLookup")
                if inspect.isawaitable(stream):  # PyMongo's async API; Motor's is synchronous
                    stream = await stream
                self.opened += 1
                try:
                    async for change in stream:
                        backoff = _BACKOFF_FIRST
                        if makes_due(change):
                            due.set()
                finally:
                    await _close(stream)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _unsupported(exc):
                    self.unsupported = True
                    log.info("change streams unavailable (%s): idle workers poll", exc)
                    return
                log.debug("change stream failed (%s); reopening in %.1f s", exc, backoff)
            # The stream ended or failed: open it again after a pause.
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MOST)

    async def close(self) -> None:
        """Stop watching; idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is None:
        return
    try:
        result = close()
        if inspect.isawaitable(result):
            await result
    except Exception:  # closing a broken stream may fail too; it is dropped either way
        pass
