"""Built-in retry backoff: pure math, exposed as the default ``streamline_retry_delay`` plugin.

Plugin layer: imports ``hooks`` only.
"""

from __future__ import annotations

import random
from typing import Any

from streamline_core.hooks import hookimpl

__all__ = ["MAX_RETRY_DELAY", "JITTER", "backoff_delay", "BuiltinRetryPolicy"]

MAX_RETRY_DELAY = 60.0
JITTER = 0.3


def backoff_delay(
    attempt: int,
    base: float,
    backoff: str | float,
    *,
    cap: float = MAX_RETRY_DELAY,
    jitter: float = JITTER,
    rand: random.Random | None = None,
) -> float:
    """Delay before the attempt after ``attempt`` (1-based) failed.

    exponential: ``base × 2^(attempt-1)``; linear: ``base × attempt``; fixed:
    ``base``; a float ``m``: ``base × m^(attempt-1)``. Then capped at ``cap``,
    then ±``jitter`` (a fraction) applied uniformly.
    """
    if backoff == "exponential":
        delay = base * float(2 ** (attempt - 1))
    elif backoff == "linear":
        delay = base * attempt
    elif backoff == "fixed":
        delay = base
    else:
        delay = base * float(float(backoff) ** (attempt - 1))
    delay = min(delay, cap)
    if jitter:
        delay *= 1 + (rand or random).uniform(-jitter, jitter)
    return max(0.0, delay)


class BuiltinRetryPolicy:
    """The default retry policy: the step's configured backoff. Always answers."""

    @hookimpl(trylast=True)
    def streamline_retry_delay(
        self, run: Any, step: Any, config: Any, attempt: int, error: BaseException
    ) -> float:
        """Backoff from the step's ``retry_delay``, ``retry_backoff``, cap and jitter."""
        return backoff_delay(
            attempt,
            float(config.retry_delay),
            config.retry_backoff,
            cap=float(getattr(config, "max_retry_delay", MAX_RETRY_DELAY)),
            jitter=float(getattr(config, "retry_jitter", JITTER)),
        )


class BuiltinPollPolicy:
    """Default idle polling: double from the minimum to the ceiling while idle, ±20 % jitter."""

    @hookimpl(trylast=True)
    def streamline_poll_delay(self, stats: dict[str, Any]) -> float:
        """Adaptive delay from ``stats``."""
        lo, hi = float(stats["min_poll_interval"]), float(stats["max_poll_interval"])
        if stats.get("claimed"):
            return 0.0
        delay = min(hi, lo * 2 ** min(int(stats.get("idle_polls", 0)), 30))
        return float(delay * random.uniform(0.8, 1.2))
