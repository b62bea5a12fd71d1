"""``Retention``: how long finished runs are kept before started workers delete them.

Model layer: imports only ``errors``, durations and the run statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from streamline_core._durations import seconds
from streamline_core.errors import ValidationError
from streamline_core.run import RunStatus

__all__ = ["Retention"]


@dataclass(frozen=True)
class Retention:
    """Per-status ages after which finished runs are deleted (``None``: kept forever).

    Started workers sweep: each one, every ``every`` seconds, deletes runs
    that ended longer ago than their status's age, ``batch_size`` runs at a
    time and at most ``max_batches`` batches a sweep. There is no leader: any
    worker may sweep and deletes are idempotent. The ``streamline_archive``
    hook receives each batch first; a plugin that raises keeps the batch for
    the next sweep.

    Attributes:
        done: Age (seconds or ``timedelta``) of ``done`` runs to delete.
        failed: Same for ``failed`` runs.
        cancelled: Same for ``cancelled`` runs.
        every: Seconds between two sweeps of one worker.
        batch_size: Runs deleted (and archived) at once.
        max_batches: Batches one sweep deletes at most, so a backlog is
            worked off over several sweeps instead of in one long one.
    """

    done: float | timedelta | None = None
    failed: float | timedelta | None = None
    cancelled: float | timedelta | None = None
    every: float | timedelta = 60.0
    batch_size: int = 500
    max_batches: int = 20

    def __post_init__(self) -> None:
        for name in ("done", "failed", "cancelled"):
            age = seconds(getattr(self, name), f"Retention.{name}")
            if age is not None and age < 0:
                raise ValidationError(f"Retention.{name} must not be negative, got {age}")
        every = seconds(self.every, "Retention.every")
        if every is None or every <= 0:
            raise ValidationError(f"Retention.every must be positive, got {self.every!r}")
        for name in ("batch_size", "max_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"Retention.{name} must be an integer >= 1, got {value!r}")

    def ages(self) -> dict[RunStatus, float]:
        """Status -> age in seconds, for the statuses that are swept."""
        out: dict[RunStatus, float] = {}
        for status in (RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED):
            age = seconds(getattr(self, status.value), f"Retention.{status.value}")
            if age is not None:
                out[status] = age
        return out

    @property
    def interval(self) -> float:
        """Seconds between sweeps."""
        return seconds(self.every, "Retention.every") or 60.0
