"""The one place where driver exceptions become ``streamline_core`` errors.

Every awaited driver call in this package runs inside :func:`translated`, so
no ``pymongo.errors.*`` or ``bson.errors.*`` exception reaches a caller
(DESIGN.md §4: stores translate every backend error).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bson.errors import BSONError, InvalidBSON, InvalidDocument
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    StoreUnavailableError,
    ValidationError,
)

__all__ = ["translated", "describe"]

_DUPLICATE_KEY_CODES = frozenset({11000, 11001, 12582})


def describe(exc: BaseException) -> str:
    """A one-line description of a driver error (its code, when it has one)."""
    code = getattr(exc, "code", None)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}{f' (code {code})' if code is not None else ''}: {text}"


@contextmanager
def translated(action: str, run_id: str | None = None) -> Iterator[None]:
    """Translate driver exceptions raised inside the block.

    Args:
        action: What the store was doing, for the message ("claim runs").
        run_id: The run concerned, when there is one.

    Raises:
        ConflictError: A unique index refused the write (duplicate key).
        StoreUnavailableError: Connection loss, timeouts, server selection
            failures, a closed client, any other server-side failure.
        ValidationError: A value cannot be encoded as BSON.
        DataCorruptionError: The server sent bytes that are not valid BSON.
    """
    try:
        yield
    except DuplicateKeyError as exc:
        raise ConflictError(f"MongoDB refused to {action}: {describe(exc)}", run_id=run_id) from exc
    except (ConnectionFailure, ExecutionTimeout, WTimeoutError) as exc:
        # ConnectionFailure covers AutoReconnect, NetworkTimeout, NotPrimaryError,
        # ServerSelectionTimeoutError and WaitQueueTimeoutError: all transient.
        raise StoreUnavailableError(
            f"MongoDB is unavailable ({action}): {describe(exc)}", run_id=run_id
        ) from exc
    except OperationFailure as exc:
        # A duplicate key can also arrive as a plain OperationFailure (for
        # instance inside a write-concern error); the code is what counts.
        if exc.code in _DUPLICATE_KEY_CODES:
            raise ConflictError(
                f"MongoDB refused to {action}: {describe(exc)}", run_id=run_id
            ) from exc
        raise StoreUnavailableError(
            f"MongoDB failed to {action}: {describe(exc)}", run_id=run_id
        ) from exc
    except InvalidOperation as exc:
        # Typically "cannot use the client after close()".
        raise StoreUnavailableError(
            f"MongoDB client cannot {action}: {describe(exc)}", run_id=run_id
        ) from exc
    except PyMongoError as exc:
        raise StoreUnavailableError(
            f"MongoDB failed to {action}: {describe(exc)}", run_id=run_id
        ) from exc
    except (InvalidDocument, OverflowError) as exc:
        # OverflowError: BSON's encoder on an integer beyond 64 bits.
        raise ValidationError(
            f"value cannot be stored in MongoDB ({action}): {describe(exc)}", run_id=run_id
        ) from exc
    except InvalidBSON as exc:
        raise DataCorruptionError(
            f"MongoDB returned an undecodable document ({action}): {describe(exc)}",
            run_id=run_id,
        ) from exc
    except BSONError as exc:
        raise DataCorruptionError(f"BSON error ({action}): {describe(exc)}", run_id=run_id) from exc
