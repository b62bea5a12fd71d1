"""``python -m benchmarks [--quick]``: engine throughput on the standard workload."""

from __future__ import annotations

import json
import sys

from benchmarks.workload import memory, run_scenario, sqlite_factory


def main() -> None:
    quick = "--quick" in sys.argv
    n = 20 if quick else 200
    reps = 1 if quick else 3
    sqlite = sqlite_factory()
    results = [
        run_scenario("in-memory, sequential", memory, n, 1, reps),
        run_scenario("in-memory, 100 in flight", memory, n * 5, 100, reps),
        run_scenario("SQLite FULL, sequential", sqlite, n, 1, reps),
        run_scenario("SQLite FULL, 50 in flight", sqlite, n * 2, 50, reps),
    ]
    print("| scenario (10-step no-op runs) | steps/s (median) | min – max | writes/step |")
    print("|---|---|---|---|")
    for r in results:
        print(r.row())
    report: dict[str, object] = {"throughput": [r.__dict__ for r in results]}
    if not quick:
        from benchmarks.pickup import measure

        pickup = measure()
        report["pickup"] = pickup
        print(
            f"\ncross-process pickup latency (SQLite, default polling, {pickup['runs']:.0f} runs): "
            f"p50 {pickup['p50_ms']:.0f} ms, p90 {pickup['p90_ms']:.0f} ms, "
            f"p99 {pickup['p99_ms']:.0f} ms"
        )
    with open("benchmarks/results.json", "w") as f:
        json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
