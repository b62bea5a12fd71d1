"""``from_url``: a store from a ``mongodb://`` or ``mongodb+srv://`` URL."""

from __future__ import annotations

import re
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError

from streamline_core.errors import ValidationError

from ._errors import describe
from .store import DEFAULT_TIMEOUT, MongoStore

__all__ = ["from_url"]

_SCHEMES = ("mongodb://", "mongodb+srv://")


def _redacted(url: str) -> str:
    # Never echo a password into an error message or a log line.
    return re.sub(r"://[^@/]*@", "://***@", url, count=1)


def _namespace(url: str) -> tuple[str, str | None]:
    """``(database, collection or None)`` from the URL's path (``/app`` or ``/app.runs``)."""
    rest = url.split("://", 1)[1]
    path = rest.split("/", 1)[1] if "/" in rest else ""
    path = path.split("?", 1)[0]
    database, _, collection = path.partition(".")
    return database, collection or None


def from_url(url: str, **options: Any) -> MongoStore:
    """A :class:`MongoStore` on the database named by ``url`` (entry point ``streamline.stores``).

    The store creates its own ``pymongo.AsyncMongoClient(url, tz_aware=True)``
    and closes it in :meth:`MongoStore.close`. No connection is made until the
    first operation. Unless the URL sets ``timeoutMS``, the client gets
    ``timeoutMS=10000``: no operation waits forever on an unreachable server.

    Args:
        url: ``mongodb://[user:pass@]host[:port][,...]/<database>[.<collection>][?options]``
            or the ``mongodb+srv://`` form. The database is required; a
            collection after it (``/app.runs``) is the runs collection.
        **options: Passed on to :class:`MongoStore` (``collection``,
            ``write_concern``, ``timeout``, ``auto_indexes``, ``commit_quorum``).

    Raises:
        ValidationError: The URL is not a MongoDB URL, is malformed, names
            no database, or names a collection other than ``collection=``.
    """
    if not url.startswith(_SCHEMES):
        raise ValidationError(f"not a MongoDB URL (mongodb:// or mongodb+srv://): {_redacted(url)}")
    _, in_url = _namespace(url)
    if in_url is not None:
        given = options.get("collection")
        if given is not None and given != in_url:
            raise ValidationError(
                f"MongoDB URL {_redacted(url)} names the collection {in_url!r} but "
                f"collection={given!r} was passed: name it in one place"
            )
        options["collection"] = in_url
    client_options: dict[str, Any] = {"tz_aware": True}
    if "timeoutms=" not in url.lower():
        client_options["timeoutMS"] = int(DEFAULT_TIMEOUT * 1000)
    try:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, **client_options)
    except (ConfigurationError, ValueError) as exc:  # InvalidURI is a ConfigurationError
        raise ValidationError(f"invalid MongoDB URL {_redacted(url)}: {describe(exc)}") from None
    try:
        db = client.get_default_database()
    except ConfigurationError:
        raise ValidationError(
            f"MongoDB URL {_redacted(url)} names no database: "
            "put it in the path, as in mongodb://host:27017/mydb"
        ) from None
    # The client has not connected yet (AsyncMongoClient connects lazily), so
    # dropping it on the error path above leaks nothing.
    return MongoStore._owning(client, db, **options)
