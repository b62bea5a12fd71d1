"""Durations given by users: seconds as numbers or ``timedelta``s, turned into float seconds.

Model layer: imports only ``errors``.
"""

from __future__ import annotations

import math
from datetime import timedelta

from streamline_core.errors import ValidationError

__all__ = ["seconds"]


def seconds(value: float | timedelta | None, what: str) -> float | None:
    """A duration in seconds from a float or ``timedelta`` (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{what} must be seconds (a number) or a timedelta, got {value!r}")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise ValidationError(f"{what} must be a finite number of seconds, got {value!r}")
    return result
