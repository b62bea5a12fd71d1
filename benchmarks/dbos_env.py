"""DBOS Transact's own virtual environment, made on first use (never the project's env)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.figures import progress

DBOS_VERSION = "3.4.0"
VENV = Path(__file__).resolve().parent / ".venv-dbos"
SCRIPT = Path(__file__).resolve().parent / "dbos_workload.py"


def python() -> Path:
    return VENV / "bin" / "python"


def _installed() -> str | None:
    if not python().exists():
        return None
    probe = "from importlib.metadata import version; print(version('dbos'))"
    done = subprocess.run([python(), "-c", probe], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def ensure() -> Path:
    """The venv's python, with ``dbos==3.4.0`` installed (created and installed if needed).

    Raises:
        RuntimeError: The venv could not be made or the install failed.
    """
    if _installed() == DBOS_VERSION:
        return python()
    progress(f"installing dbos=={DBOS_VERSION} into {VENV} (first use only)")
    steps: list[list[str]] = [
        [sys.executable, "-m", "venv", str(VENV)],
        [str(python()), "-m", "pip", "install", "--quiet", f"dbos=={DBOS_VERSION}"],
    ]
    for command in steps:
        if command[0] == sys.executable and python().exists():
            continue
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    if _installed() != DBOS_VERSION:
        raise RuntimeError(f"dbos=={DBOS_VERSION} is not importable in {VENV}")
    return python()
