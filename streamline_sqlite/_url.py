"""``sqlite://`` URLs (the ``streamline.stores`` entry point)."""

from __future__ import annotations

import functools
from pathlib import Path
from urllib.parse import parse_qs, unquote

from streamline_sqlite.store import SQLiteStore

__all__ = ["from_url"]

_SCHEME = "sqlite://"
_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def from_url(url: str) -> SQLiteStore:
    """Open the store a ``sqlite://`` URL names, creating parent directories.

    * ``sqlite:///relative/path.db`` — ``relative/path.db`` (from the working directory)
    * ``sqlite:////abs/path.db`` — ``/abs/path.db``
    * ``sqlite://:memory:`` (or ``sqlite:///:memory:``) — a private in-memory database

    Query parameters ``synchronous``, ``busy_timeout`` (seconds) and
    ``commit_on_loop`` (``true``/``false``) are passed on, e.g.
    ``sqlite:///app.db?synchronous=NORMAL``.

    Args:
        url: The URL.

    Returns:
        An open :class:`SQLiteStore`.

    Raises:
        ValueError: Not a ``sqlite://`` URL, no path, or a bad parameter.
    """
    if not url.startswith(_SCHEME):
        raise ValueError(f"not a sqlite:// URL: {url!r}")
    rest, _, query = url[len(_SCHEME) :].partition("?")
    options = {k: v[-1] for k, v in parse_qs(query, strict_parsing=bool(query)).items()}
    unknown = set(options) - {"synchronous", "busy_timeout", "commit_on_loop"}
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
    open_store = functools.partial(
        SQLiteStore,
        synchronous=synchronous,
        busy_timeout=busy_timeout,
        commit_on_loop=_FLAGS[flag],
    )
    if rest in (":memory:", "/:memory:"):
        return open_store(":memory:")
    if not rest.startswith("/") or rest == "/":
        raise ValueError(
            f"expected sqlite:///relative/path.db or sqlite:////absolute/path.db, not {url!r}"
        )
    path = Path(unquote(rest[1:]))
    path.parent.mkdir(parents=True, exist_ok=True)
    return open_store(path)
