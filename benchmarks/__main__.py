"""``python -m benchmarks [--quick] [--no-dbos] [--only NAME ...] [--reps N] [--json PATH]
[--postgres-url URL]``.

Runs every scenario, prints a markdown table on stdout (progress on stderr)
and writes the figures as JSON (default ``benchmarks/results.json``).
Sections, in order: disk, throughput (with DBOS), writes, syscalls,
latency, pickup, claims, limits, memory, postgres (on a throwaway cluster it
starts, or ``--postgres-url``; see benchmarks/postgres.py), web, children
(a parent joining 100 child runs), map (``ctx.map`` against as many steps).
``--quick`` runs each at a tiny size, without DBOS and without strace (the
smoke test uses it). See
docs/performance.md for what each figure means.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import compare, dbos_env, report
from benchmarks.compare import Scenario
from benchmarks.figures import Figure, progress
from benchmarks.workload import STEPS

SECTIONS = (
    "disk",
    "throughput",
    "writes",
    "syscalls",
    "latency",
    "pickup",
    "claims",
    "limits",
    "memory",
    "postgres",
    "web",
    "children",
    "map",
)
ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Sizes:
    reps: int
    seq_runs: int
    mem_in_flight_runs: int
    sqlite_in_flight_runs: int
    commits: int
    batches: int
    latency_runs: int
    pickup_runs: int
    pickup_gap: tuple[float, float]
    pickup_tail: float
    claim_sizes: tuple[int, int]
    claim_reps: int
    waiting: int
    idle_s: float
    wal_runs: int
    web_runs: int
    web_requests: int


FULL = Sizes(
    3,
    200,
    1_000,
    500,
    2_000,
    400,
    200,
    25,
    (0.2, 2.5),
    2.0,
    (1_000, 100_000),
    50,
    10_000,
    3.0,
    10,
    100_000,
    100,
)
QUICK = Sizes(1, 3, 20, 20, 50, 10, 10, 3, (0.0, 0.05), 0.6, (20, 200), 3, 50, 0.2, 2, 200, 3)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, no DBOS, no strace")
    parser.add_argument("--no-dbos", action="store_true", help="skip the DBOS comparison")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these sections (repeat or comma-separate): {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--reps", type=int, help="repetitions per figure (default 3; 1 with --quick)"
    )
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results.json"), help="output")
    parser.add_argument(
        "--postgres-url", help="PostgreSQL server for the postgres section (default: start one)"
    )
    args = parser.parse_args(argv)
    chosen = [s for item in args.only or [] for s in item.split(",") if s]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    args.sections = [s for s in SECTIONS if not chosen or s in chosen]
    return args


def _meta(sizes: Sizes) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "commit": (commit or "unknown") + (" (with uncommitted changes)" if dirty else ""),
        "steps": STEPS,
        "reps": sizes.reps,
    }


def _dbos_python(args: argparse.Namespace, notes: list[str]) -> Path | None:
    if args.quick or args.no_dbos:
        return None
    try:
        return dbos_env.ensure()
    except RuntimeError as exc:
        notes.append(f"DBOS comparison skipped: {exc}")
        progress(f"DBOS comparison skipped: {exc}")
        return None


def _throughput(sizes: Sizes, dbos_python: Path | None) -> list[dict[str, Any]]:
    scenarios = [
        Scenario("in-memory, sequential", "memory", sizes.seq_runs, 1),
        Scenario("in-memory, 100 in flight", "memory", sizes.mem_in_flight_runs, 100),
        Scenario("SQLite FULL, sequential", "sqlite", sizes.seq_runs, 1, with_dbos=True),
        Scenario("SQLite FULL, 50 in flight", "sqlite", sizes.sqlite_in_flight_runs, 50, True),
    ]
    return compare.run(scenarios, sizes.reps, dbos_python)


def _syscalls(dbos_python: Path | None, notes: list[str]) -> dict[str, Any]:
    from benchmarks import syscalls

    if not syscalls.available():
        notes.append("fsyncs and bytes per step skipped: strace is not available here")
        return {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ours = [sys.executable, "-m", "benchmarks.workload"]
    out = {
        "memory_sequential": syscalls.per_step(lambda n: [*ours, "memory", str(n), "1"], env=env),
        "sqlite_sequential": syscalls.per_step(lambda n: [*ours, "sqlite", str(n), "1"], env=env),
        "sqlite_50_in_flight": syscalls.per_step(
            lambda n: [*ours, "sqlite", str(n), "50"], short=50, long=200, env=env
        ),
    }
    if dbos_python is not None:
        theirs = [str(dbos_python), str(dbos_env.SCRIPT)]
        out["dbos_sequential"] = syscalls.per_step(lambda n: [*theirs, str(n), "1"])
        out["dbos_50_in_flight"] = syscalls.per_step(
            lambda n: [*theirs, str(n), "50"], short=50, long=200
        )
    return out


def _pickup(sizes: Sizes) -> dict[str, Any]:
    from benchmarks.pickup import measure

    reps = [
        measure(sizes.pickup_runs, seed=rep, gap=sizes.pickup_gap, tail=sizes.pickup_tail)
        for rep in range(sizes.reps)
    ]
    out: dict[str, Any] = {"runs": sizes.pickup_runs}
    for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"):
        out[key] = Figure.of(r[key] for r in reps)
    return out


def _sections(
    sizes: Sizes, dbos_python: Path | None, quick: bool, notes: list[str]
) -> dict[str, Callable[[], Any]]:
    from benchmarks import children, claims, disk, latency, limits, maps, memory, web, writes

    return {
        "disk": lambda: disk.probe(sizes.reps, sizes.commits, sizes.batches),
        "wal": lambda: disk.wal_bytes(sizes.wal_runs),
        "throughput": lambda: _throughput(sizes, dbos_python),
        "writes": lambda: writes.per_step(max(sizes.seq_runs // 2, 3)),
        "syscalls": lambda: {} if quick else _syscalls(dbos_python, notes),
        "latency": lambda: {
            kind: latency.first_step(kind, sizes.latency_runs, sizes.reps)
            for kind in ("memory", "sqlite")
        },
        "pickup": lambda: _pickup(sizes),
        "claims": lambda: claims.claim_latency(sizes.claim_sizes, sizes.claim_reps),
        "limits": lambda: limits.measure(
            sizes.claim_reps, quick, os.environ.get("STREAMLINE_BENCH_POSTGRES_URL")
        ),
        "memory": lambda: memory.worker_memory(sizes.waiting, sizes.reps, sizes.idle_s),
        "web": lambda: web.measure(sizes.web_runs, sizes.web_requests),
        "children": lambda: children.parent_with_children(sizes.reps, 10 if quick else 100),
        "map": lambda: maps.compare(20 if quick else 1_000, sizes.reps),
    }


def _postgres(
    sizes: Sizes, dbos_python: Path | None, url: str | None, quick: bool
) -> dict[str, Any]:
    from benchmarks import postgres

    if quick and not url:  # the smoke test: the test session's server, if there is one
        from tests.postgres.server import server_url

        url = server_url()
    pg_sizes: dict[str, Any] = {
        # Smaller than SQLite's: every commit waits for its WAL flush (fsync=on).
        "seq_runs": max(sizes.seq_runs // 4, 3),
        "in_flight_runs": max(sizes.sqlite_in_flight_runs * 3 // 5, 20),
        "pickup_runs": 4 if quick else 20,
        "pickup_gap": (0.05, 0.2) if quick else (0.2, 1.5),
        "pickup_tail": 1.0 if quick else 1.5,
        "drain_runs": 10 if quick else 400,
    }
    return postgres.section(sizes.reps, dbos_python, url, pg_sizes)


def _json_default(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the chosen sections; print the report; write the JSON. Returns the results."""
    args = _args(argv)
    sizes = QUICK if args.quick else FULL
    if args.reps:
        sizes = dataclasses.replace(sizes, reps=max(args.reps, 1))
    notes: list[str] = []
    dbos_python = _dbos_python(args, notes) if "throughput" in args.sections else None
    wants_dbos = {"syscalls", "postgres"} & set(args.sections)
    if dbos_python is None and wants_dbos and not (args.quick or args.no_dbos):
        dbos_python = _dbos_python(args, notes)
    results: dict[str, Any] = {"meta": _meta(sizes)}
    jobs = _sections(sizes, dbos_python, args.quick, notes)
    jobs["postgres"] = lambda: _postgres(sizes, dbos_python, args.postgres_url, args.quick)
    for section in args.sections:
        names = [section, "wal"] if section == "writes" else [section]
        for name in names:
            progress(f"{name} …")
            results[name] = jobs[name]()
    results["notes"] = notes
    print(report.render(results), end="")
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2, default=_json_default)
    progress(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
