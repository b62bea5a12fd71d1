"""Streamline's embedded durable store: one SQLite file, many processes on one host.

``SQLiteStore(path)`` implements the Store protocol of
:mod:`streamline_core.store` on the standard library's ``sqlite3``; see
:mod:`streamline_sqlite.store` for its threading, group commit and
durability. ``from_url("sqlite:///runs.db")`` is the ``streamline.stores``
entry point.
"""

from streamline_sqlite._url import from_url
from streamline_sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "from_url"]
