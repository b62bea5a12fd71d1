"""``Debounce``: collapse a burst of starts into one run that sees the latest input.

Model layer: imports only ``_durations`` and ``errors``. The value is checked
here, when it is built; ``streamline_core._runtime.debouncing`` applies it at
``start``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from streamline_core._durations import seconds
from streamline_core.errors import ValidationError

__all__ = ["Debounce"]

DebounceKey = Callable[[Any], Any]


@dataclass(frozen=True, init=False)
class Debounce:
    """Trailing-edge debounce of a workflow's starts (``engine.workflow(..., debounce=)``).

    A ``start`` whose key matches a run of the workflow that has not begun yet
    (no step claimed) replaces that run's input and context and pushes its
    start to ``now + period``, never past ``max_wait`` after the start that
    created it; it returns that run (same id). A start after the run began
    creates a new run. Strict across processes: the pending run holds the
    idempotency key ``"debounce:<key>"``, so of racing starts exactly one
    creates it.

    Args:
        period: Quiet time, seconds (``float``) or ``timedelta``; positive.
        key: ``key(input) -> str | int`` picking the bucket (``input`` as
            handlers see it: an ``input_model`` instance when there is one);
            ``None``: one bucket per workflow (and tenant).
        max_wait: Cap on how long a burst can push a run back, measured from
            the start that created it; ``None``: no cap. At least ``period``.

    Raises:
        ValidationError: a value is out of range or of the wrong type.
    """

    period: float
    key: DebounceKey | None = field(default=None)
    max_wait: float | None = field(default=None)

    def __init__(
        self,
        period: float | timedelta,
        key: DebounceKey | None = None,
        max_wait: float | timedelta | None = None,
    ) -> None:
        period_s = seconds(period, "Debounce period")
        if period_s is None or period_s <= 0:
            raise ValidationError(f"Debounce period must be positive, got {period!r}")
        if key is not None and not callable(key):
            raise ValidationError(f"Debounce key must be a callable(input) or None, got {key!r}")
        wait_s = seconds(max_wait, "Debounce max_wait")
        if wait_s is not None and wait_s < period_s:
            raise ValidationError(
                f"Debounce max_wait ({wait_s}s) must be at least its period ({period_s}s)"
            )
        object.__setattr__(self, "period", period_s)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "max_wait", wait_s)

    def __repr__(self) -> str:
        return f"Debounce(period={self.period}, key={self.key!r}, max_wait={self.max_wait})"

    def bucket(self, value: Any) -> str:
        """The idempotency key a pending run of the bucket of ``value`` holds.

        Raises:
            ValidationError: the key function failed, or returned something
                other than a non-empty ``str`` or an ``int``.
        """
        if self.key is None:
            return "debounce:"
        try:
            key = self.key(value)
        except Exception as exc:
            raise ValidationError(f"the Debounce key function failed: {exc!r}") from exc
        if isinstance(key, bool) or not isinstance(key, (str, int)) or key == "":
            raise ValidationError(
                f"the Debounce key must be a non-empty str or an int, got {key!r}"
            )
        return f"debounce:{key}"
