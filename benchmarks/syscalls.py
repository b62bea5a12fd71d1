"""fsyncs and bytes written per step, counted with ``strace`` (skipped when it is absent).

The workload process runs under ``strace -f -y`` twice, with a short and a
longer run count; the difference divided by the extra steps cancels start-up
(schema, migrations, warm-up). Files are grouped by role: the database, its
WAL, its rollback journal, and the directory (fsynced when a journal is
deleted).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benchmarks.workload import STEPS

_LINE = re.compile(r"^\d+\s+(\w+)\(\d+<([^>]*)>.*\)\s+=\s+(-?\d+)")
_SYNCS = {"fsync", "fdatasync"}
_WRITES = {"write", "pwrite64", "pwritev", "writev"}
# -f: every thread; -y: paths of file descriptors; -s 0: no buffer contents.
_STRACE = ("strace", "-f", "-qq", "-y", "-s", "0")


def available() -> bool:
    """Whether ``strace`` exists and may trace a child here."""
    if shutil.which("strace") is None:
        return False
    done = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "true"], capture_output=True)
    return done.returncode == 0


def _role(path: str) -> str | None:
    for suffix in ("-wal", "-journal", "-shm"):
        if path.endswith(suffix):
            return suffix[1:]
    if path.endswith((".db", ".sqlite")):
        return "db"
    if path.startswith("/tmp/") and "." not in Path(path).name:
        return "dir"
    return None  # stdout, pipes, logs, the Python cache


def _count(command: list[str], cwd: str, env: dict[str, str] | None) -> Counter[str]:
    with tempfile.NamedTemporaryFile(prefix="streamline-strace-", suffix=".txt") as out:
        subprocess.run(
            [
                *_STRACE,
                "-o",
                out.name,
                "-e",
                "trace=" + ",".join(sorted(_SYNCS | _WRITES)),
                *command,
            ],
            cwd=cwd,
            env=env,
            check=True,
            capture_output=True,
        )
        tally: Counter[str] = Counter()
        for line in Path(out.name).read_text().splitlines():
            found = _LINE.match(line)
            if found is None:
                continue
            call, path, result = found.groups()
            role = _role(path)
            if role is None:
                continue
            if call in _SYNCS:
                tally[f"fsyncs:{role}"] += 1
            elif int(result) > 0:
                tally[f"bytes:{role}"] += int(result)
        return tally


def per_step(
    command: Callable[[int], list[str]],
    short: int = 10,
    long: int = 40,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """fsyncs and bytes per step, by file role, for ``command(runs)`` (run in an empty dir)."""
    with tempfile.TemporaryDirectory(prefix="streamline-strace-") as a:
        first = _count(command(short), a, env)
    with tempfile.TemporaryDirectory(prefix="streamline-strace-") as b:
        second = _count(command(long), b, env)
    steps = (long - short) * STEPS
    keys = sorted(set(first) | set(second))
    out = {key: (second[key] - first[key]) / steps for key in keys}
    out["fsyncs"] = sum(v for k, v in out.items() if k.startswith("fsyncs:"))
    out["bytes"] = sum(v for k, v in out.items() if k.startswith("bytes:"))
    return out
