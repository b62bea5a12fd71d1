"""The benchmark harness runs at a tiny size, so it cannot rot (no speed is asserted)."""

from __future__ import annotations

from benchmarks.workload import memory, run_scenario


def test_benchmark_harness_runs_and_counts_writes() -> None:
    result = run_scenario("smoke", memory, runs=3, in_flight=2, reps=1)
    assert result.steps_per_s > 0
    assert result.writes_per_step == 1.1  # create + one transition per step, 10 steps
