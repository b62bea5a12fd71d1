"""Daemon threads that own a connection and run jobs for the event loop.

A job is a plain function of the connection. Callers ``await`` an asyncio
future that the thread settles through ``loop.call_soon_threadsafe`` — one
call per loop per batch, so a batch of 50 results wakes the loop once.

The writer variant runs everything it finds queued in one ``BEGIN IMMEDIATE
… COMMIT`` (group commit) and settles the futures only after COMMIT has
returned; the reader variant runs jobs one by one in autocommit mode.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from typing import Any, TypeVar

from streamline_core.errors import StoreUnavailableError
from streamline_sqlite._errors import translate

__all__ = ["Worker", "MAX_BATCH"]

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]

MAX_BATCH = 256
"""Most jobs in one write transaction: bounds the latency one batch adds."""

_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


class _Item:
    __slots__ = ("fn", "future", "loop")

    def __init__(
        self,
        fn: Job | None,
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[Any] | None,
    ) -> None:
        self.fn = fn  # None: the stop marker
        self.loop = loop
        self.future = future


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.done():  # the awaiting task was cancelled; the write still happened
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _as_store_error(exc: BaseException) -> BaseException:
    return translate(exc) if isinstance(exc, sqlite3.Error) else exc


class Worker:
    """One daemon thread, one connection, a queue of jobs.

    Args:
        name: Thread name.
        connect: Opens (and prepares) the connection, on the worker thread.
        transactional: Group queued jobs into one write transaction each.
    """

    def __init__(
        self, name: str, connect: Callable[[], sqlite3.Connection], *, transactional: bool
    ) -> None:
        self._connect = connect
        self._transactional = transactional
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._ready: ThreadFuture[None] = ThreadFuture()
        self._pid = os.getpid()
        # Daemon: a store that is never closed must not keep the process alive.
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.batches = 0
        """Transactions committed or attempted (tests read it)."""
        self.jobs = 0
        """Jobs run."""

    @property
    def thread(self) -> threading.Thread:
        """The worker thread."""
        return self._thread

    def start(self) -> None:
        """Start the thread and block until its connection is open.

        Raises:
            WorkflowError: Opening failed (translated); the thread has ended.
        """
        self._thread.start()
        try:
            self._ready.result()
        except BaseException:
            self._closed = True
            self._thread.join()
            raise

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread and return its result.

        Raises:
            StoreUnavailableError: The worker is closed.
            Exception: Whatever ``fn`` raised, ``sqlite3`` errors translated.
        """
        if os.getpid() != self._pid:
            # A forked child inherits the queue but not the thread: fail
            # loudly instead of waiting forever.
            raise StoreUnavailableError(
                "this SQLiteStore was opened in another process; open a new one after fork"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise StoreUnavailableError("SQLiteStore is closed")
            self._queue.put(_Item(fn, loop, future))
        return await future

    def stop_nowait(self) -> None:
        """Ask the thread to finish the queued jobs and exit (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_Item(None, None, None))

    async def stop(self) -> None:
        """Finish the queued jobs, close the connection and end the thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_Item(None, loop, future))
            else:
                future.set_result(None)
        if self._thread.is_alive():
            await future
            self._thread.join()

    # The thread.

    def _main(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._ready.set_exception(_as_store_error(exc))
            return
        self._ready.set_result(None)
        stop: _Item | None = None
        try:
            while stop is None:
                batch = [self._queue.get()]
                if batch[0].fn is None:
                    stop = batch[0]
                    break
                # Take whatever else is already waiting, but never wait for
                # more: a lone job commits at once.
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item.fn is None:
                        stop = item
                        break
                    batch.append(item)
                if self._transactional:
                    self._deliver(self._run_transaction(conn, batch))
                else:
                    self._deliver([self._run_one(conn, item) for item in batch])
        finally:
            with self._lock:
                self._closed = True
            self._fail_leftovers()
            try:
                conn.close()
            except sqlite3.Error:
                pass
            if stop is not None:
                self._deliver([(stop, None, None)])

    def _run_one(self, conn: sqlite3.Connection, item: _Item) -> tuple[_Item, Any, Any]:
        self.jobs += 1
        assert item.fn is not None
        try:
            return item, item.fn(conn), None
        except Exception as exc:
            return item, None, _as_store_error(exc)

    def _run_transaction(
        self, conn: sqlite3.Connection, batch: list[_Item]
    ) -> list[tuple[_Item, Any, Any]]:
        """Run ``batch`` in one write transaction; outcomes once it has committed.

        The jobs run in queue order, each seeing the writes of those before
        it, exactly as if each had its own transaction in that order. A job
        that fails (CAS miss, constraint, bad patch) has written nothing: every
        job makes its checks before its single write statement, and SQLite
        undoes a failed statement alone. So a failure is that job's outcome
        only and the others still commit. Only if SQLite ends the whole
        transaction (I/O error, disk full) or COMMIT fails does every job of
        the batch fail — none is acknowledged unless its write is durable.
        """
        self.batches += 1
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(item, None, translate(exc)) for item in batch]
        outcomes: list[tuple[_Item, Any, Any]] = []
        for index, item in enumerate(batch):
            outcome = self._run_one(conn, item)
            outcomes.append(outcome)
            if outcome[2] is not None and not conn.in_transaction:
                # SQLite rolled the transaction back: earlier jobs' writes are gone.
                reason = outcome[2]
                lost = [
                    (it, None, err if err is not None else _rolled_back(reason))
                    for it, _, err in outcomes
                ]
                return lost + [(it, None, _rolled_back(reason)) for it in batch[index + 1 :]]
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            return [
                (it, None, err if err is not None else translate(exc)) for it, _, err in outcomes
            ]
        return outcomes

    def _deliver(self, outcomes: list[tuple[_Item, Any, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for item, result, error in outcomes:
            if item.loop is not None and item.future is not None:
                by_loop.setdefault(item.loop, []).append((item.future, result, error))
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:
                pass  # that loop is closed: nobody is waiting any more

    def _fail_leftovers(self) -> None:
        leftovers: list[tuple[_Item, Any, Any]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            error = StoreUnavailableError("SQLiteStore is closed")
            leftovers.append((item, None, None if item.fn is None else error))
        self._deliver(leftovers)


def _rolled_back(reason: BaseException) -> StoreUnavailableError:
    return StoreUnavailableError(f"SQLite rolled back the write transaction: {reason}")
