"""Summaries shared by every scenario: median with min and max, percentiles, progress lines."""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

_T0 = time.monotonic()


@dataclass
class Figure:
    """One measured figure: the median of its repetitions, with their min and max."""

    median: float
    lo: float
    hi: float
    samples: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Iterable[float]) -> Figure:
        values = [float(v) for v in samples]
        if not values:
            raise ValueError("a figure needs at least one sample")
        return cls(statistics.median(values), min(values), max(values), values)

    def text(self, spec: str = ",.0f", unit: str = "") -> str:
        """``median unit (min – max)``; the range is left out for a single sample."""
        mid = f"{self.median:{spec}}{unit}"
        if len(self.samples) < 2:
            return mid
        return f"{mid} ({self.lo:{spec}} – {self.hi:{spec}})"


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        raise ValueError("no values")
    pos = (len(data) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def progress(message: str) -> None:
    """One progress line on stderr (the table goes to stdout)."""
    print(f"[bench +{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
