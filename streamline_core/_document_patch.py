"""Document data helpers for whole-document stores: ``UNSET``, deep copies, patch application.

Contracts layer, below ``store`` (which re-exports every name here): imports nothing
of streamline_core.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any, Final

__all__ = ["UNSET", "apply_patch", "clone_document"]


class _Unset:
    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
"""Patch value that removes a key (``$unset`` on Mongo)."""


def clone_document(value: Any) -> Any:
    """Deep copy of document data (dicts, lists, immutable scalars and datetimes).

    Several times faster than ``copy.deepcopy`` for run documents, which hold
    nothing else; other objects are copied with ``copy.deepcopy``.
    """
    t = type(value)
    if t is dict:
        return {k: clone_document(v) for k, v in value.items()}
    if t is list:
        return [clone_document(v) for v in value]
    if t in _IMMUTABLE or isinstance(value, _IMMUTABLE_TYPES):
        return value
    return copy.deepcopy(value)


_IMMUTABLE = frozenset({str, int, float, bool, type(None), datetime})
_IMMUTABLE_TYPES = (str, int, float, datetime, Enum)  # and their subclasses (StrEnum statuses)


def apply_patch(
    doc: dict[str, Any], patch: Mapping[str, Any], *, copy_values: bool = True
) -> dict[str, Any]:
    """Apply ``patch`` to ``doc`` in place (and return it), for whole-document stores.

    Values are deep-copied so the caller's patch never aliases the stored
    document (``copy_values=False`` when the caller built them fresh). Raises
    ``IndexError`` for a list index past the end and ``KeyError`` for a path
    that cannot exist (an element to unset, a key under a null or a scalar);
    a missing intermediate key is created as an empty object.
    """
    clone = clone_document if copy_values else _same
    for path, value in patch.items():
        parts = path.split(".")
        target: Any = doc
        for part in parts[:-1]:
            if isinstance(target, list):
                target = target[int(part)]
            elif isinstance(target, dict):
                target = target.setdefault(part, {})
            else:  # e.g. "lease.expires_at" while the lease is null
                raise KeyError(
                    f"cannot set {path!r}: {part!r} lies under a {type(target).__name__}"
                )
        if not isinstance(target, (dict, list)):
            raise KeyError(f"cannot set {path!r}: its parent is a {type(target).__name__}")
        last = parts[-1]
        if isinstance(target, list):
            if value is UNSET:
                raise KeyError(f"cannot unset list element {path!r}")
            target[int(last)] = clone(value)
        elif value is UNSET:
            target.pop(last, None)
        else:
            target[last] = clone(value)
    return doc


def _same(value: Any) -> Any:
    return value
