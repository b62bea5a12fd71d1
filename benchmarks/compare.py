"""Throughput scenarios, each repetition in a fresh process; DBOS alternates with ours.

For a scenario compared with DBOS the order is ours, DBOS, ours, DBOS, ...
so that drift of the machine (thermal, noisy neighbours) hits both alike;
the ratio is taken per adjacent pair and summarised like any figure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import dbos_env
from benchmarks.figures import Figure, progress

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scenario:
    name: str
    store: str  # memory | sqlite | mongo | postgres
    runs: int
    in_flight: int
    with_dbos: bool = False


def ours(
    store: str, runs: int, in_flight: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """One repetition of our engine in a fresh process."""
    command = [sys.executable, "-m", "benchmarks.workload", store, str(runs), str(in_flight)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def dbos(
    python: Path, runs: int, in_flight: int, system_database_url: str | None = None
) -> dict[str, Any]:
    """One repetition of DBOS in a fresh process, on a fresh system database
    (its default SQLite file, or the PostgreSQL database named, which must not exist yet)."""
    command = [str(python), str(dbos_env.SCRIPT), str(runs), str(in_flight)]
    if system_database_url:
        command.append(system_database_url)
    with tempfile.TemporaryDirectory(prefix="streamline-dbos-") as cwd:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"DBOS run failed:\n{done.stderr[-3000:]}")
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in samples[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = Figure.of(s[key] for s in samples)
        else:
            out[key] = value
    return out


def run(
    scenarios: list[Scenario],
    reps: int,
    dbos_python: Path | None,
    postgres: Any = None,
) -> list[dict[str, Any]]:
    """Every scenario, ``reps`` repetitions each (alternating with DBOS where asked).

    ``postgres`` (a ``benchmarks.postgres.Server``) is the server of the
    ``postgres`` scenarios: ours on a new table, DBOS on a new database of it.
    """
    results = []
    env = None if postgres is None else {**os.environ, **postgres.env()}
    for sc in scenarios:
        mine: list[dict[str, Any]] = []
        theirs: list[dict[str, Any]] = []
        compare = sc.with_dbos and dbos_python is not None
        for rep in range(reps):
            progress(f"throughput: {sc.name}, repetition {rep + 1}/{reps}: streamline")
            mine.append(ours(sc.store, sc.runs, sc.in_flight, env))
            if compare:
                assert dbos_python is not None
                progress(f"throughput: {sc.name}, repetition {rep + 1}/{reps}: DBOS")
                url = postgres.dbos_database() if sc.store == "postgres" else None
                theirs.append(dbos(dbos_python, sc.runs, sc.in_flight, url))
        result: dict[str, Any] = {
            "scenario": sc.name,
            "store": sc.store,
            "runs": sc.runs,
            "in_flight": sc.in_flight,
            "ours": _summary(mine),
        }
        if theirs:
            result["dbos"] = _summary(theirs)
            result["ratio"] = Figure.of(
                a["steps_per_s"] / b["steps_per_s"] for a, b in zip(mine, theirs, strict=True)
            )
        results.append(result)
    return results
