"""Store writes (and Mongo driver round trips) per step, for each shipped store.

Sequential runs of the standard workload through a counting wrapper; the
happy path's floor is 1 + 1/steps: the create, then one transition per step
(the first step's lease is taken in the create).
"""

from __future__ import annotations

from typing import Any

from benchmarks.workload import STEPS, measure_once

STORES = ("memory", "sqlite", "mongo")


def per_step(runs: int = 100) -> dict[str, Any]:
    """Counts per step by store; they do not vary between repetitions, so one run each."""
    out: dict[str, Any] = {"floor": 1 + 1 / STEPS}
    for store in STORES:
        row = measure_once(store, runs, 1)
        out[store] = {
            key: row[key]
            for key in (
                "writes_per_step",
                "reads_per_step",
                "round_trips_per_step",
                "bytes_sent_per_step",
            )
            if key in row
        }
    return out
