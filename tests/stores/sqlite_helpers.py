"""Helpers for the SQLite store tests that child processes import (spawn pickles by name)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from streamline_core.run import WorkflowRun, new_run_id

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def make_run(**fields: Any) -> WorkflowRun:
    """A claimable run of workflow ``wf`` due at ``T0``, with ``fields`` overriding."""
    base: dict[str, Any] = {
        "id": new_run_id(),
        "workflow_id": "wf",
        "created_at": T0,
        "updated_at": T0,
        "next_run_at": T0,
    }
    base.update(fields)
    return WorkflowRun.model_validate(base)


def claim_all_in_process(path: str, worker: str, start: Any, results: Any) -> None:
    """Child process: claim until nothing is left, then report the ids claimed.

    Args:
        path: The database file.
        worker: This process's worker name.
        start: A ``multiprocessing`` barrier, so both processes race.
        results: A ``multiprocessing`` queue receiving ``(worker, ids or error)``.
    """
    from streamline_sqlite import SQLiteStore

    async def scenario() -> list[str]:
        store = SQLiteStore(path, busy_timeout=10.0)
        claimed: list[str] = []
        try:
            start.wait(timeout=30)
            while True:
                runs = await store.claim(worker, T0, 3600, 2, {"wf"})
                if not runs:
                    return claimed
                claimed.extend(r.id for r in runs)
                # SQLite's busy handler polls with sleeps, so a writer in a
                # tight loop starves the other process; a worker's poll
                # delay gives way like this, and the two really interleave.
                await asyncio.sleep(0.001)
        finally:
            await store.close()

    try:
        results.put((worker, asyncio.run(scenario())))
    except BaseException as exc:  # report instead of dying silently
        results.put((worker, f"{type(exc).__name__}: {exc}"))


def use_inherited_store(store: Any, results: Any) -> None:
    """Forked child: try a store opened by the parent and report what happened."""

    async def attempt() -> None:
        await store.get("anything")

    try:
        asyncio.run(attempt())
        results.put("no error")
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")
