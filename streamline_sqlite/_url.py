"""``sqlite://`` URLs (the ``streamline.stores`` entry point)."""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import parse_qs, unquote

from streamline_sqlite.store import SQLiteStore

__all__ = ["from_url"]

_SCHEME = "sqlite://"
# mode -> (create, read_only)
_MODES = {"rwc": (True, False), "rw": (False, False), "ro": (False, True)}
_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def from_url(url: str) -> SQLiteStore:
    """The store a ``sqlite://`` URL names (opened lazily, on first use).

    * ``sqlite:///relative/path.db`` — ``relative/path.db`` (from the working directory)
    * ``sqlite:////abs/path.db`` — ``/abs/path.db``
    * ``sqlite://:memory:`` (or ``sqlite:///:memory:``) — a private in-memory database

    Query parameters ``synchronous``, ``busy_timeout`` (seconds) and
    ``commit_on_loop`` (``true``/``false``) are passed on, e.g.
    ``sqlite:///app.db?synchronous=NORMAL``. ``mode`` is SQLite's own
    open mode: ``rwc`` (the default: read-write, creating the file and its
    parent directories on first use), ``rw`` (read-write, the database must
    exist: a typo in the path is "no database at PATH", not a new empty
    database) or ``ro`` (read-only, the database must exist; see
    ``SQLiteStore(read_only=True)``).

    Args:
        url: The URL.

    Returns:
        A :class:`SQLiteStore`; nothing is opened or created until it is used.

    Raises:
        ValueError: Not a ``sqlite://`` URL, no path, or a bad parameter.
    """
    if not url.startswith(_SCHEME):
        raise ValueError(f"not a sqlite:// URL: {url!r}")
    rest, _, query = url[len(_SCHEME) :].partition("?")
    options = {k: v[-1] for k, v in parse_qs(query, strict_parsing=bool(query)).items()}
    unknown = set(options) - {"synchronous", "busy_timeout", "commit_on_loop", "mode"}
    if unknown:
        raise ValueError(f"unknown sqlite:// URL parameter(s) {sorted(unknown)} in {url!r}")
    synchronous = options.get("synchronous", "FULL")
    try:
        busy_timeout = float(options.get("busy_timeout", "5.0"))
    except ValueError:
        raise ValueError(f"busy_timeout must be a number of seconds in {url!r}") from None
    flag = options.get("commit_on_loop", "true").lower()
    if flag not in _FLAGS:
        raise ValueError(f"commit_on_loop must be true or false in {url!r}")
    mode = options.get("mode", "rwc").lower()
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)} in {url!r}")
    create, read_only = _MODES[mode]
    open_store = functools.partial(
        SQLiteStore,
        synchronous=synchronous,
        busy_timeout=busy_timeout,
        commit_on_loop=_FLAGS[flag],
    )
    if rest in (":memory:", "/:memory:"):
        if mode != "rwc":
            raise ValueError(f"a private in-memory database has no mode={mode} in {url!r}")
        return open_store(":memory:")
    if not rest.startswith("/") or rest == "/":
        raise ValueError(
            f"expected sqlite:///relative/path.db or sqlite:////absolute/path.db, not {url!r}"
        )
    return open_store(Path(unquote(rest[1:])), create=create, read_only=read_only)
