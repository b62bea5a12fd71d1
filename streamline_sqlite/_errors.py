"""The one place where ``sqlite3`` exceptions become ``streamline_core`` errors.

Every statement the store runs executes on one of its two worker threads, and
both workers pass any ``sqlite3.Error`` through :func:`translate` before it
reaches a caller, so no ``sqlite3.*`` exception can escape the package.
"""

from __future__ import annotations

import sqlite3

from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    StoreUnavailableError,
    WorkflowError,
)

__all__ = ["translate"]

# Primary result codes (the low byte of an extended code).
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_CORRUPT_CODES = frozenset({_SQLITE_CORRUPT, _SQLITE_NOTADB})
# SQLite reports a damaged JSON ``doc`` (json_set/json_extract) only by message.
_CORRUPT_MARKERS = ("malformed", "not a database")


def translate(exc: sqlite3.Error) -> WorkflowError:
    """The ``streamline_core`` error that stands for ``exc``.

    Corruption (a damaged file, a file that is not a database, a malformed
    stored document) becomes ``DataCorruptionError``; a constraint violation
    ``ConflictError``; anything else (busy/locked, I/O, disk full, a closed
    connection) ``StoreUnavailableError``, the transient kind callers may retry.

    Args:
        exc: The exception raised by the ``sqlite3`` module.

    Returns:
        A new exception; raise it ``from exc`` to keep the cause visible.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    message = str(exc)
    details = {"sqlite_error": name}
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in _CORRUPT_CODES or any(m in message for m in _CORRUPT_MARKERS):
        return DataCorruptionError(f"SQLite database is corrupt: {message}", details=details)
    if isinstance(exc, sqlite3.IntegrityError):
        return ConflictError(f"SQLite constraint failed: {message}", details=details)
    return StoreUnavailableError(f"SQLite store unavailable: {message}", details=details)
