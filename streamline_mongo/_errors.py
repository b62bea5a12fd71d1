"""The one place where driver exceptions become ``streamline_core`` errors.

Every awaited driver call in this package runs inside :func:`translated`, so
no ``pymongo.errors.*`` or ``bson.errors.*`` exception reaches a caller
(DESIGN.md §4: stores translate every backend error).

A server error is classified by its code and its error labels, because the
class PyMongo raises (``OperationFailure``) says nothing about whether trying
again can help:

* **transient** (``StoreUnavailableError``): network errors, timeouts, a
  primary stepping down, anything labelled ``RetryableWriteError``,
  ``TransientTransactionError``, ``NetworkError`` or
  ``RetryableReadError``. Only these are worth retrying.
* **data** (``ValidationError``): the server refused what was written — a
  document over 16 MB, nesting deeper than 100 levels, a field name it cannot
  store. Retrying the same write can never succeed.
* **patch** (``DataCorruptionError``): the update itself is malformed
  (overlapping paths, a path through a scalar): a bug in the patch, refused
  before anything was written.
* **configuration** (``StoreError``, not ``StoreUnavailableError``): missing
  privileges, conflicting index options, an unsatisfiable write concern.
  An operator must act; retrying in a loop would only hide it.

An ``OperationFailure`` whose code is in none of these lists is reported as a
non-transient ``StoreError`` too: an unknown refusal retried forever (while
heartbeats keep the lease fresh) is worse than one reported at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from bson.errors import BSONError, InvalidBSON, InvalidDocument
from pymongo.errors import (
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
    WorkflowError,
)

__all__ = [
    "translated",
    "describe",
    "is_ambiguous",
    "duplicate_index",
    "MAX_DOCUMENT_BYTES",
]

MAX_DOCUMENT_BYTES: Final = 16 * 1024 * 1024
"""MongoDB's limit on one BSON document."""

DUPLICATE_KEY_CODES: Final = frozenset({11000, 11001, 12582})

_TRANSIENT_LABELS: Final = (
    "RetryableWriteError",
    "TransientTransactionError",
    "NetworkError",
    "RetryableReadError",
)

_TRANSIENT_CODES: Final = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        24,  # LockTimeout
        43,  # CursorNotFound (the cursor died with its server)
        46,  # LockBusy
        50,  # MaxTimeMSExpired
        64,  # WriteConcernFailed (wtimeout)
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        112,  # WriteConflict
        117,  # ConflictingOperationInProgress
        133,  # FailedToSatisfyReadPreference
        134,  # ReadConcernMajorityNotAvailableYet
        189,  # PrimarySteppedDown
        202,  # NetworkInterfaceExceededTimeLimit
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
        16500,  # RequestRateTooLarge (Cosmos DB's throttling)
        91331,  # ReadConcernMajorityNotAvailableYet on DocumentDB
    }
)

_DATA_CODES: Final = {
    10334: "the document exceeds MongoDB's 16 MB limit (BSONObjectTooLarge)",
    17419: "the document would exceed MongoDB's 16 MB limit after this update",
    17420: "the document would exceed MongoDB's 16 MB limit after this update",
    15: "a value is nested deeper than MongoDB's limit of 100 levels (Overflow)",
    52: "a field name starts with '$' where MongoDB does not allow it",
    55: "a sub-document looks like a DBRef but is not a valid one",
    56: "a field name is empty",
    57: "a field name contains '.' where MongoDB does not allow it",
    2: "MongoDB rejected a value (BadValue)",
    14: "a value has a type MongoDB cannot apply here (TypeMismatch)",
}

_PATCH_CODES: Final = {
    40: "two paths of the update overlap (ConflictingUpdateOperators)",
    28: "an update path runs through a value that is not a document (PathNotViable)",
    66: "the update changes an immutable field (ImmutableField)",
    9: "MongoDB could not parse the update (FailedToParse)",
}

_CONFIGURATION_CODES: Final = {
    13: "the database user lacks a privilege (Unauthorized)",
    18: "authentication failed",
    67: "the index cannot be created (CannotCreateIndex)",
    85: "an index with this name exists with other options (IndexOptionsConflict)",
    86: "an index with these keys exists with other options (IndexKeySpecsConflict)",
    72: "an option is invalid (InvalidOptions)",
    100: "the write concern cannot be satisfied by this deployment",
    115: "the command is not supported by this deployment (CommandNotSupported)",
    303: "the server does not support this feature (NotImplemented)",
    8000: "the hosted cluster refused the operation (AtlasError)",
}


def describe(exc: BaseException) -> str:
    """A one-line description of a driver error (its code, when it has one)."""
    code = getattr(exc, "code", None)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}{f' (code {code})' if code is not None else ''}: {text}"


def _labelled_transient(exc: PyMongoError) -> bool:
    return any(exc.has_error_label(label) for label in _TRANSIENT_LABELS)


def is_ambiguous(exc: BaseException) -> bool:
    """Whether a failed write may nevertheless have been applied.

    A network error after the request was sent, a write-concern failure or a
    write timeout can each arrive after the server applied the write: the
    answer was lost, not the write.
    """
    cause = exc.__cause__ if isinstance(exc, StoreError) else exc
    if isinstance(cause, ServerSelectionTimeoutError | WaitQueueTimeoutError):
        return False  # no server was reached: nothing was sent
    if isinstance(cause, ConnectionFailure | WTimeoutError | WriteConcernError):
        return True
    return isinstance(cause, PyMongoError) and cause.has_error_label("NetworkError")


def duplicate_index(exc: BaseException) -> str | None:
    """The name of the unique index a duplicate-key error names, when the server says.

    Servers report it in ``errmsg`` (``... index: name dup key: ...``) and
    give the key pattern in ``keyPattern``; mongomock gives neither.
    """
    details: Any = getattr(exc, "details", None) or {}
    message = str(details.get("errmsg") or exc)
    marker = " index: "
    if marker in message:
        rest = message.split(marker, 1)[1]
        return rest.split(" ", 1)[0] or None
    pattern = details.get("keyPattern")
    if isinstance(pattern, dict) and list(pattern) == ["_id"]:
        return "_id_"
    return None


def _server_error(exc: OperationFailure, action: str, run_id: str | None) -> WorkflowError:
    """The streamline error for a server-side refusal, by code and labels."""
    code = exc.code
    what = f"({action}): {describe(exc)}"
    if code in DUPLICATE_KEY_CODES:
        # A duplicate key can also arrive as a plain OperationFailure (for
        # instance inside a write-concern error); the code is what counts.
        return ConflictError(f"MongoDB refused to {action}: {describe(exc)}", run_id=run_id)
    if isinstance(exc, WriteConcernError | WTimeoutError | ExecutionTimeout):
        return StoreUnavailableError(f"MongoDB is unavailable {what}", run_id=run_id)
    if _labelled_transient(exc) or code in _TRANSIENT_CODES:
        return StoreUnavailableError(f"MongoDB is unavailable {what}", run_id=run_id)
    if code in _DATA_CODES:
        return ValidationError(
            f"MongoDB refused to {action}: {_DATA_CODES[code]} {what}", run_id=run_id
        )
    if code in _PATCH_CODES:
        return DataCorruptionError(
            f"MongoDB refused a malformed update ({action}): {_PATCH_CODES[code]} {what}",
            run_id=run_id,
        )
    if code in _CONFIGURATION_CODES:
        return StoreError(
            f"MongoDB configuration problem, not transient: {_CONFIGURATION_CODES[code]} "
            f"{what} (see docs/mongo.md, deployment checklist)",
            run_id=run_id,
        )
    return StoreError(
        f"MongoDB refused to {action} (not known to be transient, so not retried): {describe(exc)}",
        run_id=run_id,
    )


@contextmanager
def translated(action: str, run_id: str | None = None) -> Iterator[None]:
    """Translate driver exceptions raised inside the block.

    Args:
        action: What the store was doing, for the message ("claim runs").
        run_id: The run concerned, when there is one.

    Raises:
        ConflictError: A unique index refused the write (duplicate key).
        StoreUnavailableError: A transient failure: connection loss, timeouts,
            server selection, a retryable server error, a closed client.
        ValidationError: A value cannot be encoded as BSON or the server
            refused the data (too large, too deep, a bad string).
        DataCorruptionError: The server sent bytes that are not valid BSON,
            or refused a malformed update.
        StoreError: A configuration problem or a refusal of unknown cause;
            not worth retrying.
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
        raise _server_error(exc, action, run_id) from exc
    except InvalidOperation as exc:
        # Typically "cannot use the client after close()".
        raise StoreUnavailableError(
            f"MongoDB client cannot {action}: {describe(exc)}", run_id=run_id
        ) from exc
    except PyMongoError as exc:
        # Client-side driver failures (protocol errors, a configuration the
        # driver rejects late): reported as transient, as the driver offers
        # no finer classification for them.
        raise StoreUnavailableError(
            f"MongoDB failed to {action}: {describe(exc)}", run_id=run_id
        ) from exc
    except DocumentTooLarge as exc:
        # PyMongo's own refusal, before sending: a document or a command over
        # the server's limit. Retrying the same write can never succeed.
        raise ValidationError(
            f"MongoDB cannot {action}: the document or update exceeds MongoDB's 16 MB limit "
            f"({describe(exc)}); keep large payloads outside the run (e.g. in object storage)",
            run_id=run_id,
        ) from exc
    except (InvalidDocument, OverflowError) as exc:
        # OverflowError: BSON's encoder on an integer beyond 64 bits.
        raise ValidationError(
            f"value cannot be stored in MongoDB ({action}): {describe(exc)}", run_id=run_id
        ) from exc
    except UnicodeError as exc:
        # BSON strings are UTF-8: a lone surrogate ("\ud800") cannot be encoded.
        raise ValidationError(
            f"a string cannot be stored in MongoDB ({action}): it is not valid UTF-8 "
            f"(a lone surrogate?): {exc}",
            run_id=run_id,
        ) from exc
    except InvalidBSON as exc:
        raise DataCorruptionError(
            f"MongoDB returned an undecodable document ({action}): {describe(exc)}",
            run_id=run_id,
        ) from exc
    except BSONError as exc:
        raise DataCorruptionError(f"BSON error ({action}): {describe(exc)}", run_id=run_id) from exc
    except RuntimeError as exc:
        # AsyncMongoClient binds itself to the event loop it first ran on and
        # raises a bare RuntimeError from any other loop.
        if "event loop" not in str(exc):
            raise
        raise StoreError(
            f"MongoDB client cannot {action} from this event loop: {exc} Create the store "
            "(and its client) inside the event loop that uses it: a PyMongo async client "
            "works in one event loop only.",
            run_id=run_id,
        ) from exc
