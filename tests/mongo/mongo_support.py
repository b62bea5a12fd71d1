"""Helpers for the Mongo store tests: run builders and collection proxies.

Proxies wrap a driver collection behind a database wrapper, so a
``MongoStore`` under test talks to them exactly as it talks to a driver:

* :class:`RecordingCollection` records every call (name, args, kwargs), to
  check the update documents the store produces;
* :class:`YieldingCollection` awaits ``asyncio.sleep(0)`` before and after
  every call: mongomock-motor never yields to the event loop, so without it
  "concurrent" calls run one after another and race tests prove nothing;
* :class:`FailingCollection` raises a given exception from every call.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamline_core.run import StepState, WorkflowRun, new_run_id

LIVE_URL = os.environ.get("STREAMLINE_TEST_MONGO_URL") or None
"""A live MongoDB server to test against, or ``None`` for mongomock-motor."""

T0 = datetime(2030, 1, 1, tzinfo=UTC)
"""Far in the future, so mongomock's wall-clock TTL enforcement never fires."""

WF = "wf"


def make_run(**fields: Any) -> WorkflowRun:
    """A valid run: running, due at ``T0``, two pending steps; ``fields`` override."""
    base: dict[str, Any] = {
        "id": new_run_id(),
        "workflow_id": WF,
        "created_at": T0,
        "updated_at": T0,
        "next_run_at": T0,
        "current_step_id": "a",
        "steps": [StepState(step_id="a"), StepState(step_id="b")],
    }
    base.update(fields)
    return WorkflowRun.model_validate(base)


@dataclass
class Call:
    """One recorded collection call."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class _CursorProxy:
    def __init__(self, cursor: Any, before: Callable[[], Any], after: Callable[[], Any]) -> None:
        self._cursor = cursor
        self._before = before
        self._after = after

    async def to_list(self, length: int | None = None) -> list[Any]:
        await self._before()
        try:
            return list(await self._cursor.to_list(length))
        finally:
            await self._after()


class CollectionProxy:
    """Forwards every method to ``inner``, with hooks around awaited calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def before(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Runs before each call."""

    async def after(self, name: str) -> None:
        """Runs after each call (also when it raised)."""

    def find(self, *args: Any, **kwargs: Any) -> _CursorProxy:
        cursor = self.inner.find(*args, **kwargs)

        async def before() -> None:
            await self.before("find", args, kwargs)

        async def after() -> None:
            await self.after("find")

        return _CursorProxy(cursor, before, after)

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self.before(name, args, kwargs)
            try:
                return await target(*args, **kwargs)
            finally:
                await self.after(name)

        return call


class RecordingCollection(CollectionProxy):
    """Records every call in :attr:`calls`."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.calls: list[Call] = []

    async def before(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls.append(Call(name, args, dict(kwargs)))

    def named(self, *names: str) -> list[Call]:
        """The recorded calls to any of ``names``."""
        return [c for c in self.calls if c.name in names]


@dataclass
class InFlight:
    """How many proxied calls were in progress at once (shared by proxies)."""

    now: int = 0
    most: int = 0


class YieldingCollection(CollectionProxy):
    """Yields to the event loop around every call, so races really interleave.

    ``tracker.most > 1`` afterwards proves that calls overlapped; pass one
    tracker to several proxies to see overlap across stores.
    """

    def __init__(self, inner: Any, tracker: InFlight | None = None) -> None:
        super().__init__(inner)
        self.tracker = tracker if tracker is not None else InFlight()

    async def before(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        self.tracker.now += 1
        self.tracker.most = max(self.tracker.most, self.tracker.now)
        await asyncio.sleep(0)

    async def after(self, name: str) -> None:
        await asyncio.sleep(0)
        self.tracker.now -= 1
        await asyncio.sleep(0)


class FailingCollection(CollectionProxy):
    """Raises ``error`` from every call, or only from the methods in ``only``
    (``find`` fails when its cursor is drained)."""

    def __init__(
        self, inner: Any, error: BaseException, only: frozenset[str] | None = None
    ) -> None:
        super().__init__(inner)
        self.error = error
        self.only = only

    async def before(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.only is None or name in self.only:
            raise self.error


class WrappedDatabase:
    """A database whose ``get_collection`` wraps the driver's collection."""

    def __init__(self, db: Any, wrap: Callable[[Any], Any]) -> None:
        self.inner = db
        self.wrap = wrap
        self.wrapped: list[Any] = []

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def client(self) -> Any:
        """The driver's client (the store tells mongomock by it)."""
        return self.inner.client

    def get_collection(self, name: str, **options: Any) -> Any:
        proxy = self.wrap(self.inner.get_collection(name, **options))
        self.wrapped.append(proxy)
        return proxy

    @property
    def proxy(self) -> Any:
        """The proxy of the (only) collection the store took."""
        return self.wrapped[-1]


MAX_BSON = 16 * 1024 * 1024
"""A real server's limit on one document (and, plus 16 KiB, on one command)."""


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _as_server_returns(value: Any) -> Any:
    """What PyMongo hands back for a stored value: DBRef for {"$ref", "$id"}
    sub-documents, Int64 for integers that needed 64 bits."""
    from bson.dbref import DBRef
    from bson.int64 import Int64

    if isinstance(value, dict):
        if "$ref" in value and "$id" in value:
            extra = {k: v for k, v in value.items() if k not in ("$ref", "$id", "$db")}
            return DBRef(value["$ref"], value["$id"], value.get("$db"), **extra)
        return {k: _as_server_returns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_server_returns(v) for v in value]
    if type(value) is int and not -(2**31) <= value < 2**31:
        return Int64(value)
    return value


def _update_paths(update: dict[str, Any]) -> list[str]:
    return [path for op, fields in update.items() if op.startswith("$") for path in fields]


class StrictCollection(CollectionProxy):
    """mongomock-motor behind the checks a real server and PyMongo make.

    * every document, filter and update is BSON-encoded as PyMongo would:
      lone surrogates, unencodable values and integers beyond 64 bits fail
      there, and a document or command over 16 MB is ``DocumentTooLarge``;
    * a document nested deeper than 100 levels is refused (code 15);
    * an update with overlapping paths is refused (code 40);
    * an update whose result would exceed 16 MB is refused (code 17419) and
      leaves the document as it was;
    * documents come back decoded as PyMongo decodes them (``DBRef``, ``Int64``);
    * ``lose_answer[name] = error``: the next ``name`` call is applied, then
      ``error`` is raised, as when the answer is lost on the way back;
    * ``$$NOW`` (which mongomock lacks) in a filter's
      ``{"$expr": {"$lte": ["$<path>", "$$NOW"]}}`` reads :attr:`server_now`,
      the server's clock (it becomes ``{<path>: {"$lte": server_now}}``), and
      so does an update pipeline ``[{"$set": {<path>: {"$add": ["$$NOW", ms]}}}]``.
    """

    def __init__(self, inner: Any, server_now: datetime | None = None) -> None:
        super().__init__(inner)
        self.lose_answer: dict[str, BaseException] = {}
        self.server_now = server_now or datetime.now(UTC)

    def _pipeline_as_update(self, pipeline: list[Any]) -> dict[str, Any]:
        """An update pipeline of ``$set``s of ``{"$add": ["$$NOW", ms]}`` as a plain ``$set``
        (mongomock runs no pipelines); anything else is refused, never guessed."""
        from datetime import timedelta

        to_set: dict[str, Any] = {}
        for stage in pipeline:
            if set(stage) != {"$set"}:
                raise NotImplementedError(f"the proxy emulates only $set stages: {stage}")
            for path, value in stage["$set"].items():
                add = value.get("$add") if isinstance(value, dict) else None
                if not (isinstance(add, list) and len(add) == 2 and add[0] == "$$NOW"):
                    raise NotImplementedError(f"the proxy emulates only $$NOW + ms: {value}")
                to_set[path] = self.server_now + timedelta(milliseconds=add[1])
        return {"$set": to_set}

    def _with_now(self, filter: Any) -> Any:
        """``filter`` with the ``$$NOW`` comparisons evaluated on :attr:`server_now`."""
        if isinstance(filter, list):
            return [self._with_now(f) for f in filter]
        if not isinstance(filter, dict):
            return filter
        out = {k: self._with_now(v) for k, v in filter.items() if k != "$expr"}
        expr = filter.get("$expr")
        if expr is not None:
            field, now = expr.get("$lte", [None, None]) if isinstance(expr, dict) else (None, None)
            if len(expr) != 1 or now != "$$NOW" or not str(field).startswith("$"):
                raise NotImplementedError(f"the proxy emulates only $lte against $$NOW: {expr}")
            path = str(field)[1:]
            out[path] = {**out.get(path, {}), "$lte": self.server_now}
        return out

    @staticmethod
    def _encode(value: Any, limit: int = MAX_BSON) -> int:
        import bson
        from pymongo.errors import DocumentTooLarge

        size = len(bson.encode(value))
        if size > limit:
            raise DocumentTooLarge(f"BSON document too large ({size} bytes)")
        return size

    @staticmethod
    def _encoded_size(doc: Any) -> int:
        import bson

        return len(bson.encode(doc))

    @staticmethod
    def _refuse_depth(doc: Any) -> None:
        from pymongo.errors import OperationFailure

        if _depth(doc) > 100:
            raise OperationFailure("Document exceeds maximum nesting depth of 100", code=15)

    async def _answer(self, name: str, result: Any) -> Any:
        lost = self.lose_answer.pop(name, None)
        if lost is not None:
            raise lost
        return result

    async def insert_one(self, document: Any, *args: Any, **kwargs: Any) -> Any:
        self._encode(document)
        self._refuse_depth(document)
        return await self._answer("insert_one", await self.inner.insert_one(document))

    async def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        self._encode(filter or {})
        filter = self._with_now(filter)
        failed = self.lose_answer.pop("find_one", None)  # a read has no effect to keep
        if failed is not None:
            raise failed
        return _as_server_returns(await self.inner.find_one(filter, *args, **kwargs))

    async def find_one_and_update(self, filter: Any, update: Any, **kwargs: Any) -> Any:
        from pymongo.errors import OperationFailure

        self._encode(filter)
        filter = self._with_now(filter)
        if isinstance(update, list):
            update = self._pipeline_as_update(update)
        self._encode(update, MAX_BSON + 16 * 1024)
        paths = _update_paths(update)
        for a in paths:
            for b in paths:
                if a != b and b.startswith(a + "."):
                    raise OperationFailure(
                        f"Updating the path '{b}' would create a conflict at '{a}'", code=40
                    )
        before = await self.inner.find_one(filter, sort=kwargs.get("sort"))
        result = await self.inner.find_one_and_update(filter, update, **kwargs)
        if before is not None:
            after = await self.inner.find_one({"_id": before["_id"]})
            if after is not None and (self._encoded_size(after) > MAX_BSON or _depth(after) > 100):
                await self.inner.replace_one({"_id": before["_id"]}, before)
                code = 15 if _depth(after) > 100 else 17419
                raise OperationFailure(
                    "Resulting document after update is larger than 16777216"
                    if code == 17419
                    else "Document exceeds maximum nesting depth of 100",
                    code=code,
                )
        return await self._answer("find_one_and_update", _as_server_returns(result))

    def find(self, *args: Any, **kwargs: Any) -> _CursorProxy:
        if args:
            self._encode(args[0])
            args = (self._with_now(args[0]), *args[1:])
        cursor = self.inner.find(*args, **kwargs)

        async def nothing() -> None:
            return None

        proxy = _CursorProxy(cursor, nothing, nothing)
        original = proxy.to_list

        async def to_list(length: int | None = None) -> list[Any]:
            return [_as_server_returns(d) for d in await original(length)]

        proxy.to_list = to_list  # type: ignore[method-assign]
        return proxy


class FailNth(CollectionProxy):
    """Raises ``error`` from the ``nth`` call (1-based) of method ``name``, and
    only then; with ``applied=True`` the call is made first (a lost answer)."""

    def __init__(
        self, inner: Any, name: str, nth: int, error: BaseException, applied: bool = False
    ) -> None:
        super().__init__(inner)
        self.name, self.nth, self.error, self.applied = name, nth, error, applied
        self.seen = 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name != self.name or not callable(target):
            return super().__getattr__(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.seen += 1
            if self.seen != self.nth:
                return await target(*args, **kwargs)
            if self.applied:
                await target(*args, **kwargs)
            raise self.error

        return call


class ChangeFeed:
    """A replica set's change events for one collection, shared by the proxies on it.

    mongomock has no change streams. :class:`WatchingCollection` publishes an
    event here after each write it forwards (the document as stored after
    the write, ``wallTime`` = :attr:`server_now`), and every open
    :class:`FakeChangeStream` receives the events that pass its ``$match``
    stages (evaluated with mongomock's own filter code).

    * ``refuse_watch = error``: every ``watch`` raises it (a standalone
      server raises ``OperationFailure`` code 40573);
    * :meth:`break_streams`: the open streams raise ``error`` on their next read.
    """

    def __init__(self, server_now: Any = None) -> None:
        self.server_now = server_now
        self.streams: list[FakeChangeStream] = []
        self.refuse_watch: BaseException | None = None
        self.watch_calls = 0

    def publish(self, operation: str, document: Any) -> None:
        if document is None:
            return
        event = {
            "_id": {"_data": f"token-{len(self.streams)}"},
            "operationType": operation,
            "fullDocument": dict(document),
            "documentKey": {"_id": document["_id"]},
        }
        if self.server_now is not None:
            event["wallTime"] = self.server_now
        for stream in list(self.streams):
            stream.offer(event)

    def break_streams(self, error: BaseException) -> None:
        for stream in list(self.streams):
            stream.queue.put_nowait(error)


class FakeChangeStream:
    """An async-iterable change stream over a :class:`ChangeFeed` (PyMongo-shaped)."""

    def __init__(self, feed: ChangeFeed, pipeline: list[dict[str, Any]]) -> None:
        self.feed = feed
        self.matches = [stage["$match"] for stage in pipeline if "$match" in stage]
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.closed = False

    def offer(self, event: dict[str, Any]) -> None:
        from mongomock.filtering import filter_applies

        if all(filter_applies(match, event) for match in self.matches):
            self.queue.put_nowait(event)

    def __aiter__(self) -> FakeChangeStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    async def close(self) -> None:
        self.closed = True
        if self in self.feed.streams:
            self.feed.streams.remove(self)


class WatchingCollection(CollectionProxy):
    """mongomock-motor with change streams faked over a shared :class:`ChangeFeed`."""

    def __init__(self, inner: Any, feed: ChangeFeed) -> None:
        super().__init__(inner)
        self.feed = feed

    async def watch(self, pipeline: Any = None, **kwargs: Any) -> FakeChangeStream:
        self.feed.watch_calls += 1
        if self.feed.refuse_watch is not None:
            raise self.feed.refuse_watch
        stream = FakeChangeStream(self.feed, list(pipeline or []))
        self.feed.streams.append(stream)
        return stream

    async def insert_one(self, document: Any, *args: Any, **kwargs: Any) -> Any:
        result = await self.inner.insert_one(document, *args, **kwargs)
        self.feed.publish("insert", await self.inner.find_one({"_id": document["_id"]}))
        return result

    async def find_one_and_update(self, filter: Any, update: Any, **kwargs: Any) -> Any:
        result = await self.inner.find_one_and_update(filter, update, **kwargs)
        if result is not None:
            self.feed.publish("update", await self.inner.find_one({"_id": result["_id"]}))
        return result
