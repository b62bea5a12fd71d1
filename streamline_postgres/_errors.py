"""The one place where psycopg exceptions become ``streamline_core`` errors.

Every statement the store runs goes through :func:`translated`, so no
``psycopg.*`` or ``psycopg_pool.*`` exception reaches a caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool
from psycopg import errors as pg

from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    StoreUnavailableError,
    ValidationError,
    WorkflowError,
)

__all__ = ["translate", "translated", "is_ambiguous"]

_MAX_MESSAGE = 500
# The server terminated the connection (shutdown, crash of another backend).
_TERMINATED = frozenset({"57P01", "57P02"})


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first[:_MAX_MESSAGE]


def is_ambiguous(exc: BaseException) -> bool:
    """Whether a write that raised ``exc`` may nevertheless have been committed.

    A dropped connection (``OperationalError`` without a server error code,
    or a connection exception, SQLSTATE class 08) can happen after the
    server received the statement, even after it committed: only reading the
    row back tells. So can the server's own goodbye when it shuts down or
    crashes (57P01 ``admin_shutdown``, 57P02 ``crash_shutdown``): the
    backend is terminated wherever it is, possibly after its commit record
    was written and before the answer was sent. Any other error the server
    answered with means the statement did not commit.
    """
    cause = exc.__cause__ if isinstance(exc, WorkflowError) else exc
    if not isinstance(cause, psycopg.OperationalError):
        return False
    sqlstate = getattr(cause, "sqlstate", None) or ""
    return not sqlstate or sqlstate.startswith("08") or sqlstate in _TERMINATED


def translate(exc: Exception, what: str, run_id: str | None = None) -> WorkflowError:
    """The ``streamline_core`` error standing for ``exc``, raised while doing ``what``.

    * unique violations: ``ConflictError``;
    * data the server refuses (a NUL character, a number out of range, a
      document too large or too deep): ``ValidationError``;
    * a stored document breaking the table's checks: ``DataCorruptionError``;
    * anything else (connection lost or refused, timeouts, pool exhausted,
      serialization failures, deadlocks, a server shutting down, a missing
      table): ``StoreUnavailableError``, the transient kind callers retry.
    """
    sqlstate = getattr(exc, "sqlstate", None)
    details = {"postgres_error": type(exc).__name__, "sqlstate": sqlstate}
    message = f"PostgreSQL store: cannot {what}: {_describe(exc)}"
    if isinstance(exc, pg.UniqueViolation):
        return ConflictError(message, run_id=run_id, details=details)
    # By SQLSTATE class: 22 data exception (NUL in text, out of range,
    # invalid JSON), 54 program limit (too large, too deep).
    if (sqlstate or "")[:2] in ("22", "54") or isinstance(exc, psycopg.DataError):
        return ValidationError(message, run_id=run_id, details=details)
    if isinstance(exc, pg.IntegrityConstraintViolation):
        return DataCorruptionError(message, run_id=run_id, details=details)
    if isinstance(exc, (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed)):
        return StoreUnavailableError(message, run_id=run_id, details=details)
    return StoreUnavailableError(message, run_id=run_id, details=details)


@contextmanager
def translated(what: str, run_id: str | None = None) -> Iterator[None]:
    """Run the block, raising any driver exception as its ``streamline_core`` error."""
    try:
        yield
    except WorkflowError:
        raise
    except (psycopg.Error, psycopg_pool.PoolTimeout, psycopg_pool.PoolClosed, OSError) as exc:
        raise translate(exc, what, run_id) from exc
