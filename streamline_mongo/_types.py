"""The slice of the driver API the store uses, as structural types.

``MongoStore`` accepts a PyMongo ``AsyncDatabase`` or a Motor database
(mongomock-motor's is Motor-shaped). Motor ships no type hints, so the store
is typed against these protocols: PyMongo's async classes satisfy them (the
``TYPE_CHECKING`` block below makes mypy prove it), and Motor objects, being
untyped, are accepted as they are.

Only methods whose behaviour matches between MongoDB and mongomock are listed
(DESIGN.md §8): no sessions, no ``bulk_write``, no ``array_filters``.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pymongo.write_concern import WriteConcern

__all__ = ["MongoCollection", "MongoCursor", "MongoDatabase", "Document"]

Document = dict[str, Any]
"""A run document as the driver hands it over."""


class MongoCursor(Protocol):
    """What ``find`` returns; only drained whole."""

    async def to_list(self, length: int | None = None) -> list[Any]: ...


class MongoCollection(Protocol):
    """The collection operations the store performs."""

    async def insert_one(self, document: Any) -> Any: ...

    async def find_one(self, filter: Any | None = None, *args: Any, **kwargs: Any) -> Any: ...

    def find(self, *args: Any, **kwargs: Any) -> MongoCursor: ...

    async def find_one_and_update(
        self,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        projection: Mapping[str, Any] | None = None,
        sort: Any = None,
        upsert: bool = False,
        return_document: bool = False,
    ) -> Any: ...

    async def count_documents(self, filter: Mapping[str, Any]) -> int: ...

    async def delete_many(self, filter: Mapping[str, Any]) -> Any: ...

    async def update_many(self, filter: Mapping[str, Any], update: Mapping[str, Any]) -> Any: ...

    async def index_information(self) -> MutableMapping[str, Any]: ...

    async def create_index(self, keys: Any, **kwargs: Any) -> str: ...

    async def drop_index(self, index_or_name: Any, **kwargs: Any) -> None: ...

    def watch(self, *args: Any, **kwargs: Any) -> Any: ...


class MongoDatabase(Protocol):
    """A database handle: PyMongo ``AsyncDatabase`` or a Motor database."""

    @property
    def name(self) -> str: ...

    def get_collection(
        self,
        name: str,
        codec_options: Any = None,
        read_preference: Any = None,
        write_concern: WriteConcern | None = None,
    ) -> MongoCollection: ...


if TYPE_CHECKING:
    # Compile-time proof that PyMongo's async API satisfies the protocols above.
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.cursor import AsyncCursor
    from pymongo.asynchronous.database import AsyncDatabase

    def _check(
        db: AsyncDatabase[Document], coll: AsyncCollection[Document], cur: AsyncCursor[Document]
    ) -> tuple[MongoDatabase, MongoCollection, MongoCursor]:
        return db, coll, cur
