"""Daemon threads that own a connection and run jobs for the event loop.

A job is a plain function of the connection. Callers ``await`` an asyncio
future that is settled once the job has run (for the writer: once its
transaction has committed).

The reader runs jobs one by one in autocommit mode, on its thread.

The writer batches (group commit). A write is not run at once: it waits for
the end of the event loop's current iteration, so that every write the
loop's ready tasks produce in that iteration forms one batch, committed in
one ``BEGIN IMMEDIATE … COMMIT``:

* inline, on the loop's thread, when the writer thread is idle — the usual
  case. Handing a batch to the thread and back costs two thread wake-ups,
  about 100 µs of wall time and 85 µs of CPU on a 2-core VM, more than half
  the fsync it would overlap; and the Python part of a write holds the GIL
  on either thread, so the loop gains nothing else by handing it over. The
  loop is blocked for the commit (the GIL is released during the fsync),
  but never for another process's lock: the connection has no busy
  timeout, so a locked database makes the inline attempt give up at once;
* on the thread otherwise: when another process holds the write lock (the
  thread waits it out, up to ``busy_timeout``), while the thread is still
  busy with an earlier batch, or for a batch of more than ``MAX_BATCH``.
  The thread runs everything it finds queued in one transaction and
  settles the futures through ``loop.call_soon_threadsafe`` (one call per
  loop per batch).

Either way a caller is answered only after the COMMIT that holds its write.
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

_SQLITE_BUSY = 5

_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


class _Item:
    __slots__ = ("fn", "future", "inline", "loop")

    def __init__(
        self,
        fn: Job | None,
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[Any] | None,
        inline: bool = False,
    ) -> None:
        self.fn = fn  # None: the stop marker
        self.loop = loop
        self.future = future
        self.inline = inline


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


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == _SQLITE_BUSY


class Worker:
    """One daemon thread, one connection, a queue of jobs.

    Args:
        name: Thread name.
        connect: Opens (and prepares) the connection, on the worker thread.
            A transactional worker's connection must have no busy timeout
            (``PRAGMA busy_timeout = 0``): the worker applies ``busy_timeout``
            itself, on its thread only.
        transactional: Group queued jobs into one write transaction each,
            and commit a lone write inline (see the module docstring).
        busy_timeout: Seconds the thread waits for another connection's
            write lock (transactional workers).
        commit_on_loop: Whether batches may commit inline on the event
            loop's thread (transactional workers); ``False`` sends every
            batch to the thread.
    """

    def __init__(
        self,
        name: str,
        connect: Callable[[], sqlite3.Connection],
        *,
        transactional: bool,
        busy_timeout: float = 0.0,
        commit_on_loop: bool = True,
    ) -> None:
        self._connect = connect
        self._transactional = transactional
        self._commit_on_loop = commit_on_loop
        self._busy_ms = int(busy_timeout * 1000)
        self._queue: queue.SimpleQueue[list[_Item]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Held by whoever uses the connection: the thread for a batch, or the
        # loop's thread for an inline commit.
        self._in_use = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._closed = False
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item]] = {}
        self._ready: ThreadFuture[None] = ThreadFuture()
        self._pid = os.getpid()
        # Daemon: a store that is never closed must not keep the process alive.
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.batches = 0
        """Transactions committed or attempted (tests read it)."""
        self.inline_batches = 0
        """Of those, the ones committed inline on the loop's thread."""
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

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = True) -> T:
        """Run ``fn(connection)`` and return its result.

        Args:
            fn: The job. On a transactional worker it runs inside a write
                transaction, and the result is returned after COMMIT.
            inline: Whether this write may commit inline on the loop's
                thread with its batch (tests pass ``False`` to park the
                thread in a job).

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
        if self._closed:
            raise StoreUnavailableError("SQLiteStore is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        item = _Item(fn, loop, future, inline and self._commit_on_loop)
        if not self._transactional:
            self._enqueue([item])
            return await future
        pending = self._pending.get(loop)
        if pending is None:
            self._pending[loop] = pending = []
            loop.call_soon(self._flush, loop)
        pending.append(item)
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """End of a loop iteration: commit the batch inline, or hand it to the thread."""
        items = self._pending.pop(loop, None)
        if not items:
            return
        if (
            len(items) <= MAX_BATCH
            and all(item.inline for item in items)
            and self._commit_inline(items)
        ):
            return
        self._enqueue(items)

    def _enqueue(self, items: list[_Item]) -> None:
        with self._lock:
            if not self._closed:
                for start in range(0, len(items), MAX_BATCH):
                    self._queue.put(items[start : start + MAX_BATCH])
                return
        closed = StoreUnavailableError("SQLiteStore is closed")
        self._deliver([(item, None, closed) for item in items])

    def _commit_inline(self, items: list[_Item]) -> bool:
        """Commit ``items`` on this thread if the connection is free; False to queue them."""
        if self._closed or not self._queue.empty() or not self._in_use.acquire(blocking=False):
            return False
        try:
            conn = self._conn
            if conn is None:
                return False
            outcomes = self._run_transaction(conn, items, wait=False)
            if outcomes is None:  # another connection holds the write lock
                return False
            self.inline_batches += 1
        finally:
            self._in_use.release()
        _settle([(item.future, result, error) for item, result, error in outcomes if item.future])
        return True

    def stop_nowait(self) -> None:
        """Ask the thread to finish the queued jobs and exit (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put([_Item(None, None, None)])

    async def stop(self) -> None:
        """Finish the queued jobs, close the connection and end the thread."""
        loop = asyncio.get_running_loop()
        self._flush(loop)  # this loop's writes of the current iteration go first
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put([_Item(None, loop, future)])
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
        self._conn = conn
        self._ready.set_result(None)
        stop: _Item | None = None
        try:
            while stop is None:
                batch: list[_Item] = []
                group = self._queue.get()
                # Take whatever else is already waiting, but never wait for
                # more: a lone job commits at once.
                while True:
                    for item in group:
                        if item.fn is None:
                            stop = item
                            break
                        batch.append(item)
                    if stop is not None or len(batch) >= MAX_BATCH:
                        break
                    try:
                        group = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if not batch:
                    continue
                if self._transactional:
                    with self._in_use:
                        outcomes = self._run_transaction(conn, batch, wait=True)
                    assert outcomes is not None
                    self._deliver(outcomes)
                else:
                    self._deliver([self._run_one(conn, item) for item in batch])
        finally:
            with self._lock:
                self._closed = True
            self._fail_leftovers()
            with self._in_use:
                self._conn = None
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

    def _begin(self, conn: sqlite3.Connection, *, wait: bool) -> bool:
        """``BEGIN IMMEDIATE``; False if another connection holds the lock and not ``wait``."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            if not wait:
                return False
            if self._busy_ms <= 0:
                raise
        # Contended: wait for the lock the way SQLite does, on this (the
        # worker's) thread only, then go back to failing fast.
        conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
        try:
            conn.execute("BEGIN IMMEDIATE")
        finally:
            conn.execute("PRAGMA busy_timeout = 0")
        return True

    def _run_transaction(
        self, conn: sqlite3.Connection, batch: list[_Item], *, wait: bool
    ) -> list[tuple[_Item, Any, Any]] | None:
        """Run ``batch`` in one write transaction; outcomes once it has committed.

        The jobs run in queue order, each seeing the writes of those before
        it, exactly as if each had its own transaction in that order. A job
        that fails (CAS miss, constraint, bad patch) has written nothing: every
        job makes its checks before its single write statement, and SQLite
        undoes a failed statement alone. So a failure is that job's outcome
        only and the others still commit. Only if SQLite ends the whole
        transaction (I/O error, disk full) or COMMIT fails does every job of
        the batch fail — none is acknowledged unless its write is durable.

        Returns:
            The outcomes, or ``None`` when the database is locked by another
            connection and ``wait`` is false (nothing was run).
        """
        try:
            if not self._begin(conn, wait=wait):
                return None
        except sqlite3.Error as exc:
            self.batches += 1
            return [(item, None, translate(exc)) for item in batch]
        self.batches += 1
        outcomes: list[tuple[_Item, Any, Any]] = []
        try:
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
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if not isinstance(exc, sqlite3.Error):
                raise
            failure = translate(exc)
            done = [(it, None, err if err is not None else failure) for it, _, err in outcomes]
            return done + [(it, None, failure) for it in batch[len(outcomes) :]]
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
                group = self._queue.get_nowait()
            except queue.Empty:
                break
            for item in group:
                error = StoreUnavailableError("SQLiteStore is closed")
                leftovers.append((item, None, None if item.fn is None else error))
        self._deliver(leftovers)


def _rolled_back(reason: BaseException) -> StoreUnavailableError:
    return StoreUnavailableError(f"SQLite rolled back the write transaction: {reason}")
