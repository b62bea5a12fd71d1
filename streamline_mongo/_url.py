"""``from_url``: a store from a ``mongodb://`` or ``mongodb+srv://`` URL."""

from __future__ import annotations

import re
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError

from streamline_core.errors import ValidationError

from ._errors import describe
from .store import MongoStore

__all__ = ["from_url"]

_SCHEMES = ("mongodb://", "mongodb+srv://")


def _redacted(url: str) -> str:
    # Never echo a password into an error message or a log line.
    return re.sub(r"://[^@/]*@", "://***@", url, count=1)


def from_url(url: str, **options: Any) -> MongoStore:
    """A :class:`MongoStore` on the database named by ``url`` (entry point ``streamline.stores``).

    The store creates its own ``pymongo.AsyncMongoClient(url, tz_aware=True)``
    and closes it in :meth:`MongoStore.close`. No connection is made until the
    first operation.

    Args:
        url: ``mongodb://[user:pass@]host[:port][,...]/<database>[?options]``
            or the ``mongodb+srv://`` form. The database is required.
        **options: Passed on to :class:`MongoStore` (``collection``, ``write_concern``).

    Raises:
        ValidationError: The URL is not a MongoDB URL, is malformed, or names
            no database.
    """
    if not url.startswith(_SCHEMES):
        raise ValidationError(f"not a MongoDB URL (mongodb:// or mongodb+srv://): {_redacted(url)}")
    try:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
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
