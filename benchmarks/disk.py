"""The disk's limit: how fast Python's ``sqlite3`` can commit on this machine.

``BEGIN IMMEDIATE; UPDATE …; COMMIT`` on a small table, with one row per
transaction (the floor under a sequential step: one commit each) and with
50 rows per transaction (the floor under 50 runs in flight when their
transitions share a commit). WAL with ``synchronous=FULL``, as our store
runs; also the rollback journal (``journal_mode=DELETE``), DBOS's default.

``wal_bytes`` measures what one store write costs in the WAL: frames
appended per commit (each a page plus a 24-byte frame header), read from
``PRAGMA wal_checkpoint`` after a short workload.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure

ROWS = 1_000
WAL_FRAME_HEADER = 24


def _open(path: Path, journal: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA journal_mode = {journal}").fetchone()
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, pad TEXT)")
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO t VALUES (?, 0, ?)", ((i, "x" * 200) for i in range(ROWS)))
    conn.execute("COMMIT")
    return conn


def commit_rate(transactions: int, rows_per_txn: int, journal: str = "WAL") -> float:
    """Rows committed per second, ``rows_per_txn`` updates per ``BEGIN IMMEDIATE … COMMIT``."""
    with tempfile.TemporaryDirectory(prefix="streamline-disk-") as tmp:
        conn = _open(Path(tmp) / "probe.db", journal)
        try:
            row = 0
            t = time.perf_counter()
            for _ in range(transactions):
                conn.execute("BEGIN IMMEDIATE")
                for _ in range(rows_per_txn):
                    conn.execute("UPDATE t SET n = n + 1 WHERE id = ?", (row,))
                    row = (row + 1) % ROWS
                conn.execute("COMMIT")
            elapsed = time.perf_counter() - t
        finally:
            conn.close()
    return transactions * rows_per_txn / elapsed


def probe(reps: int = 3, commits: int = 2_000, batches: int = 400) -> dict[str, Figure]:
    """The three limits, each the median of ``reps`` interleaved repetitions."""
    single, batched, rollback = [], [], []
    for _ in range(reps):
        single.append(commit_rate(commits, 1))
        batched.append(commit_rate(batches, 50))
        rollback.append(commit_rate(max(commits // 4, 1), 1, journal="DELETE"))
    return {
        "wal_single_commits_per_s": Figure.of(single),
        "wal_batched_rows_per_s": Figure.of(batched),
        "delete_journal_commits_per_s": Figure.of(rollback),
    }


async def _wal_cost(path: str, runs: int) -> dict[str, Any]:
    from benchmarks.stores import CountingStore
    from benchmarks.workload import STEPS, noop
    from streamline_core import Engine
    from streamline_sqlite import SQLiteStore

    store = CountingStore(SQLiteStore(path))
    engine = Engine(store, load_entry_point_plugins=False)
    wf = engine.workflow("bench", steps={f"s{i}": noop for i in range(STEPS)})
    async with engine:
        for _ in range(2):  # schema and first writes out of the way
            await wf.wait_for((await wf.start()).id, timeout=60, poll_interval=0.05)
        with sqlite3.connect(path, timeout=10) as side:  # empty the WAL
            side.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        store.writes = 0
        for _ in range(runs):
            await wf.wait_for((await wf.start()).id, timeout=60, poll_interval=0.05)
        out = {"writes": store.writes, **_wal_state(path)}
    await store.inner.close()
    return out


def _wal_state(path: str) -> dict[str, Any]:
    size = Path(path + "-wal").stat().st_size
    with sqlite3.connect(path, timeout=10) as side:
        page = side.execute("PRAGMA page_size").fetchone()[0]
        doc = side.execute("SELECT avg(length(doc)) FROM runs").fetchone()[0]
        _, log_frames, _ = side.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return {"page_size": page, "doc_bytes": doc, "wal_frames": log_frames, "wal_file_bytes": size}


def wal_bytes(runs: int = 10) -> dict[str, Any]:
    """WAL frames and bytes per store write (one commit each, sequential).

    Few enough runs that SQLite's auto-checkpoint (at 1,000 frames) does not
    restart the WAL midway; ``consistent`` says the frame count and the file
    size agree.
    """
    with tempfile.TemporaryDirectory(prefix="streamline-wal-") as tmp:
        out = asyncio.run(_wal_cost(str(Path(tmp) / "wal.db"), runs))
    frame = out["page_size"] + WAL_FRAME_HEADER
    out["consistent"] = out["wal_file_bytes"] == 32 + out["wal_frames"] * frame
    out["frames_per_write"] = out["wal_frames"] / out["writes"]
    out["wal_bytes_per_write"] = out["wal_frames"] * frame / out["writes"]
    return out
