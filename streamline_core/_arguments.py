"""Checks of the public entries' arguments: a wrong type is a ``ValidationError`` naming it.

Model layer: imports ``errors`` and ``_json``. The façades call these before
anything reaches a part or the store, so a bad argument never becomes a raw
Python error deep inside, a misleading ``STORE_UNAVAILABLE``, or a
backend query operator (a run id like ``{"$ne": None}``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from streamline_core._json import INT_MAX, INT_MIN, is_text
from streamline_core.errors import ValidationError

__all__ = [
    "text",
    "optional_text",
    "run_id",
    "reason",
    "integer",
    "aware_datetime",
    "optional_aware_datetime",
    "names",
    "mapping",
]

MAX_ID_LENGTH = 200


def _kind(value: Any) -> str:
    return type(value).__name__


def text(value: Any, what: str, *, max_length: int | None = None, allow_empty: bool = False) -> str:
    """A non-empty (or, with ``allow_empty``, any) string of valid Unicode text."""
    if not isinstance(value, str) or not (value or allow_empty):
        raise ValidationError(
            f"{what} must be a non-empty string, got {_kind(value)} {value!r:.60}"
        )
    if not is_text(value):
        raise ValidationError(f"{what} is not valid Unicode text (it holds a lone surrogate)")
    if max_length is not None and len(value) > max_length:
        raise ValidationError(f"{what} is {len(value)} characters; the limit is {max_length}")
    return value


def optional_text(value: Any, what: str) -> str | None:
    """``None``, or :func:`text`."""
    return None if value is None else text(value, what)


def reason(value: Any) -> str | None:
    """A cancel reason: ``None`` or any string of valid Unicode text."""
    return None if value is None else text(value, "reason", allow_empty=True)


def run_id(value: Any, what: str = "run_id") -> str:
    """A run id: a string, never a query document or any other type."""
    return text(value, what, max_length=MAX_ID_LENGTH)


def integer(value: Any, what: str, *, low: int = INT_MIN, high: int = INT_MAX) -> int:
    """An ``int`` (not a ``bool``) within ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be an int, got {_kind(value)} {value!r:.60}")
    if not low <= value <= high:
        raise ValidationError(f"{what} must be between {low} and {high}, got {value!r:.60}")
    return value


def aware_datetime(value: Any, what: str) -> datetime:
    """A timezone-aware ``datetime``."""
    if not isinstance(value, datetime):
        raise ValidationError(
            f"{what} must be a timezone-aware datetime, got {_kind(value)} {value!r:.60}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{what} must be timezone-aware")
    return value


def optional_aware_datetime(value: Any, what: str) -> datetime | None:
    """``None``, or :func:`aware_datetime`."""
    return None if value is None else aware_datetime(value, what)


def names(value: Any, what: str) -> str | tuple[str, ...] | None:
    """``None``, one name, or a sequence of names (each a non-empty string)."""
    if value is None:
        return None
    if isinstance(value, str):
        return text(value, what)
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        raise ValidationError(f"{what} must be a string or a list of strings, got {_kind(value)}")
    return tuple(text(v, f"{what}[{i}]") for i, v in enumerate(value))


def mapping(value: Any, what: str) -> Mapping[str, Any] | None:
    """``None``, or a mapping with string keys."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be a dict, got {_kind(value)}")
    for key in value:
        text(key, f"a key of {what}")
    return value
