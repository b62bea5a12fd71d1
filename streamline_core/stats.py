"""Counters and gauges of one engine, for dashboards and the worker's status line.

Model layer: imports nothing of streamline_core.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["EngineStats"]


@dataclass
class EngineStats:
    """Counters since the engine was built (gauges are filled in by ``Engine.stats``).

    Attributes:
        claims: Runs this worker leased through ``claim``.
        commits: Step commits written (one per completed, skipped, suspended or failed step).
        retries: Failed attempts rescheduled with a delay.
        recoveries: Runs taken over from a dead worker.
        dead_lettered: Runs failed with ``DEAD_LETTERED``.
        completed: Runs this engine finished ``done``.
        failed: Runs this engine finished ``failed``.
        store_errors: Store calls that failed with ``StoreUnavailableError``.
        last_pickup_lag: Seconds between a claimed run's due time and its claim (last claim).
        max_pickup_lag: The largest such lag seen.
    """

    claims: int = 0
    commits: int = 0
    retries: int = 0
    recoveries: int = 0
    dead_lettered: int = 0
    completed: int = 0
    failed: int = 0
    store_errors: int = 0
    last_pickup_lag: float = 0.0
    max_pickup_lag: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """A plain dict copy."""
        return {k: float(v) if isinstance(v, float) else v for k, v in asdict(self).items()}
