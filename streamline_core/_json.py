"""JSON-compatibility checks for everything a run stores (input, context, outputs, events).

Model layer: imports nothing of streamline_core. A value passes only if every
store can hold it and give it back exactly: JSON types, nested at most
:data:`MAX_DEPTH` levels, integers within 64 bits, text that is valid Unicode.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

__all__ = [
    "MAX_DEPTH",
    "INT_MIN",
    "INT_MAX",
    "Unstorable",
    "to_json_value",
    "is_text",
    "json_equal",
]

MAX_DEPTH = 64
"""Deepest nesting of lists and dicts in a stored value (MongoDB refuses documents past 100)."""
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
"""Integers are 64-bit signed: what MongoDB and SQLite store as numbers."""


class Unstorable(TypeError):
    """A value cannot be stored: ``path`` locates it, ``type_name`` names its type."""

    def __init__(self, path: str, type_name: str, why: str = "") -> None:
        super().__init__(f"{path}: {type_name}{(' ' + why) if why else ''}")
        self.path = path
        self.type_name = type_name
        self.why = why


class _Refused(Exception):
    """Raised deep in a value; the path is collected on the way out (built only when refused)."""

    def __init__(self, type_name: str, why: str = "") -> None:
        self.type_name = type_name
        self.why = why
        self.where: list[str] = []


def is_text(value: str) -> bool:
    """Whether ``value`` is valid Unicode text (no lone surrogates), so every store keeps it."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_json_value(value: Any, path: str = "value") -> Any:
    """Return ``value`` as plain JSON data, or raise :class:`Unstorable`.

    Accepted: ``None``, ``bool``, ``int`` (64-bit), finite ``float``, ``str``
    (valid Unicode), ``list``/``tuple``, ``dict`` with ``str`` keys, nested at
    most :data:`MAX_DEPTH` levels, and pydantic models (dumped in JSON mode).
    Everything else (``datetime``, ``set``, ``bytes``, ``Decimal``, arbitrary
    objects) is refused: nothing is ever pickled or silently stringified.
    """
    try:
        return _convert(value, 0)
    except _Refused as refused:
        where = path + "".join(reversed(refused.where))
        if len(where) > 160:  # a path 10,000 levels deep would make a 30 kB message
            where = f"{where[:100]}...{where[-40:]}"
        raise Unstorable(where, refused.type_name, refused.why) from None


def _convert(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        if not is_text(value):
            raise _Refused("str", "(a lone surrogate: not valid Unicode text)")
        return value
    if value is None or kind is bool:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _Refused("float", "(not finite)")
        return value
    if kind is dict or isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise _Refused("dict", f"(nested deeper than {MAX_DEPTH} levels)")
        out: dict[str, Any] = {}
        for k, v in value.items():
            try:
                if type(k) is not str:
                    raise _Refused(type(k).__name__, "(dict keys must be str)")
                if not is_text(k):
                    raise _Refused("str", "(a key with a lone surrogate: not valid Unicode text)")
                out[k] = _convert(v, depth + 1)
            except _Refused as refused:
                refused.where.append(f"[{k!r}]")
                raise
        return out
    if kind is list or isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise _Refused(kind.__name__, f"(nested deeper than {MAX_DEPTH} levels)")
        items: list[Any] = []
        for i, v in enumerate(value):
            try:
                items.append(_convert(v, depth + 1))
            except _Refused as refused:
                refused.where.append(f"[{i}]")
                raise
        return items
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        if not INT_MIN <= value <= INT_MAX:
            raise _Refused("int", "(outside the 64-bit range every store keeps)")
        return int(value)
    if isinstance(value, float):
        return _convert(float(value), depth)
    if isinstance(value, str):
        if not is_text(value):
            raise _Refused(kind.__name__, "(a lone surrogate: not valid Unicode text)")
        return value
    if isinstance(value, BaseModel):
        return _convert(value.model_dump(mode="json"), depth)
    raise _Refused(kind.__name__)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two JSON values as a document database judges it.

    Unlike ``==``, ``true`` is not ``1`` and ``false`` is not ``0`` (MongoDB and
    SQLite's JSON functions keep booleans apart from numbers); ``1`` and ``1.0``
    stay equal.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
