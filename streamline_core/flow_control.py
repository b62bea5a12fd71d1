"""Flow-control options of a workflow: :class:`Concurrency` and :class:`RateLimit`.

Model layer: imports ``errors`` and ``_durations``.

Both are frozen values checked when built, so a bad limit, period or key is
a ``ValidationError`` at ``engine.workflow(...)``. A key is a callable of the
run's input (what handlers see as ``ctx.input``) returning a string; it is
computed once at ``start`` and stored on the run, so a claimer needs nothing
but the run to enforce the limit. ``key=None`` puts every run of the
workflow in one bucket. Buckets are per workflow name: two workflows never
share one, while the versions of one workflow do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from streamline_core._durations import seconds
from streamline_core.errors import ValidationError

__all__ = ["Concurrency", "RateLimit", "KeyFunction", "bucket_key"]

KeyFunction = Callable[[Any], str]
"""``key(input) -> str``: the bucket a run belongs to."""

MAX_KEY_LENGTH = 500
"""Longest key a key function may return (keys are stored and indexed)."""


def _check_limit(limit: Any, what: str) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(f"{what} limit must be an int >= 1, got {limit!r}")
    return limit


def _check_key(key: Any, what: str) -> None:
    if key is not None and not callable(key):
        raise ValidationError(f"{what} key must be a callable(input) -> str or None, got {key!r}")


def bucket_key(key: KeyFunction | None, value: Any, what: str) -> str:
    """The bucket of a run with input ``value`` under ``key`` (``""`` for ``key=None``).

    Raises:
        ValidationError: the key function raised, or returned something other
            than a non-empty string of at most :data:`MAX_KEY_LENGTH` characters.
    """
    if key is None:
        return ""
    try:
        result = key(value)
    except Exception as exc:
        raise ValidationError(f"{what} key failed on the run's input: {exc!r}") from exc
    if not isinstance(result, str):
        raise ValidationError(
            f"{what} key must return a str, got {type(result).__name__} ({result!r})"
        )
    if not result or len(result) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"{what} key must return a non-empty str of at most {MAX_KEY_LENGTH} characters"
        )
    return result


@dataclass(frozen=True, slots=True)
class Concurrency:
    """At most ``limit`` runs of one key execute at once, across every worker of a store.

    A run holds one of its key's slots only while it holds a lease (while a
    worker executes its steps); waiting, sleeping and retry-waiting runs hold
    none. Excess runs stay queued and start, in claim order, as slots free.

    Args:
        limit: Slots per key (``>= 1``).
        key: ``key(input) -> str``; ``None``: one bucket for the whole workflow.

    Raises:
        ValidationError: ``limit`` is not an int >= 1, or ``key`` is not callable.
    """

    limit: int
    key: KeyFunction | None = None

    def __post_init__(self) -> None:
        _check_limit(self.limit, "Concurrency")
        _check_key(self.key, "Concurrency")

    def key_for(self, value: Any) -> str:
        """The bucket of a run whose input is ``value``."""
        return bucket_key(self.key, value, "Concurrency")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``limit`` runs of one key *begin* in any window of ``period`` seconds.

    A run begins when a worker first claims it; later steps, retries and
    resumes do not count again. Excess runs are delayed, never dropped or
    failed.

    Args:
        limit: Runs that may begin per window (``>= 1``).
        period: Window length, seconds or a ``timedelta`` (``> 0``).
        key: ``key(input) -> str``; ``None``: one bucket for the whole workflow.

    Raises:
        ValidationError: a bad limit, period or key.
    """

    limit: int
    period: float | timedelta
    key: KeyFunction | None = None

    def __post_init__(self) -> None:
        _check_limit(self.limit, "RateLimit")
        period = seconds(self.period, "RateLimit period")
        if period is None or not math.isfinite(period) or period <= 0:
            raise ValidationError(f"RateLimit period must be > 0 seconds, got {self.period!r}")
        object.__setattr__(self, "period", period)
        _check_key(self.key, "RateLimit")

    @property
    def period_seconds(self) -> float:
        """``period`` in seconds."""
        period = self.period
        return period.total_seconds() if isinstance(period, timedelta) else float(period)

    def key_for(self, value: Any) -> str:
        """The bucket of a run whose input is ``value``."""
        return bucket_key(self.key, value, "RateLimit")
