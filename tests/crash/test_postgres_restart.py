"""The PostgreSQL server crashes and restarts under worker processes: nothing lost or doubled.

Three real workers (``tests.crash.worker_app``) drive 120 runs of the
``soak`` workflow (three steps, each returning a token unique to its
execution and stamping its start and end into a log file with ``O_APPEND``).
Mid-run the server is killed (``pg_ctl stop -m immediate``: a crash, no
shutdown checkpoint), later stopped cleanly (``-m fast``), and each time
started again on the same data and socket. The workers' pools reconnect,
and the engine's retries on ``StoreUnavailableError`` carry every run on.

A monitor thread reads every run while this happens. What must hold:

* every run ends ``done``;
* no step output is committed twice: once the monitor has seen a step's
  output, it never sees another one for that step (a lost commit redone by
  a second execution would show up as the token changing), and the final
  token of each step is one whose execution ended exactly once;
* no revision goes backwards (an acknowledged commit lost by the crash
  would).

The test database has ``synchronous_commit = on`` (the rest of the test
cluster runs with it off, which a server crash punishes by losing the last
acknowledged commits; ``fsync = off`` is harmless here: the OS keeps the pages).
The test restarts the test cluster when this process alone uses it, and
starts a private one otherwise (under pytest-xdist the session's workers
share one cluster, and a restart would hit their tests).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from streamline_core import Engine, RunStatus, StepContext
from tests.crash.test_postgres_processes import spawn
from tests.postgres.cluster import FAST_TEST_SETTINGS, Cluster
from tests.postgres.server import own_cluster

RUNS = 120
STEPS = ("one", "two", "three")


def _database(cluster: Cluster) -> str:
    name = f"restart_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
        conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = on".encode())
    return cluster.url(name)


async def _noop(ctx: StepContext) -> None:
    return None


async def _start_runs(url: str) -> list[str]:
    engine = Engine(url, load_entry_point_plugins=False)
    wf = engine.workflow("soak", steps={s: _noop for s in STEPS})
    ids = [(await wf.start({"i": i})).id for i in range(RUNS)]
    await engine.shutdown()
    return ids


class Monitor(threading.Thread):
    """Reads every run every few milliseconds, through outages, and records what it saw."""

    def __init__(self, url: str, table: str) -> None:
        super().__init__(daemon=True)
        self.url, self.table = url, table
        self.stop = threading.Event()
        self.revisions: dict[str, int] = {}
        self.regressions: list[tuple[str, int, int]] = []
        self.outputs: dict[tuple[str, int], set[str]] = {}
        self.reads = self.failures = 0

    def run(self) -> None:
        sql = f"SELECT id, revision, doc->'steps' FROM {self.table}".encode()
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=2) as conn:
                    while not self.stop.is_set():
                        for run_id, revision, steps in conn.execute(sql).fetchall():
                            self._saw(run_id, int(revision), steps)
                        self.reads += 1
                        time.sleep(0.01)
            except psycopg.Error:
                self.failures += 1
                time.sleep(0.05)

    def _saw(self, run_id: str, revision: int, steps: list[dict[str, Any]]) -> None:
        last = self.revisions.get(run_id, -1)
        if revision < last:
            self.regressions.append((run_id, last, revision))
        self.revisions[run_id] = max(last, revision)
        for i, step in enumerate(steps):
            if step.get("status") == "done":
                self.outputs.setdefault((run_id, i), set()).add(step["output"])


def _ended(log: Path) -> int:
    soak = Path(f"{log}.soak")
    return soak.read_text().count("\nE ") if soak.exists() else 0


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _all_done(url: str, table: str) -> bool:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute(
                f"SELECT count(*) FILTER (WHERE status = 'done'), count(*) FROM {table}".encode()
            ).fetchone()
    except psycopg.Error:
        return False
    return row is not None and row[0] == row[1] == RUNS


def test_runs_survive_server_crashes_and_restarts_and_nothing_commits_twice(
    tmp_path: Path,
) -> None:
    shared = own_cluster()
    cluster = shared or Cluster(FAST_TEST_SETTINGS, prefix="streamline-pg-restart-")
    if shared is None:
        cluster.create()  # others use the session's server (or it is not ours): a private one
    table = f"restart_{uuid.uuid4().hex[:12]}"
    base = _database(cluster)
    url, log = f"{base}&table={table}", tmp_path / "exec.log"
    workers = spawn(url, log, lease=2.0, slots=2, n=3)
    monitor = Monitor(base, table)
    monitor.start()
    outages = []
    try:
        ids = asyncio.run(_start_runs(url))  # once all three workers are up
        for mode, share in (("immediate", 1 / 4), ("fast", 3 / 5)):
            _wait_for(lambda s=share: _ended(log) >= RUNS * len(STEPS) * s, 60, "no progress")
            down, wall = time.monotonic(), time.time()
            cluster.stop_server(mode)
            time.sleep(0.5)  # workers hit the outage: claims, commits, heartbeats fail
            cluster.start_server()
            before = _ended(log)
            up = time.monotonic()
            _wait_for(lambda b=before: _ended(log) > b, 60, f"no progress after the {mode} restart")
            outages.append((mode, wall, up - down, time.monotonic() - up))
        _wait_for(lambda: _all_done(base, table), 90, "not every run finished")
        finished = time.monotonic()
        with psycopg.connect(base, autocommit=True) as conn:
            docs = dict(conn.execute(f"SELECT id, doc FROM {table}".encode()).fetchall())
    finally:
        if not cluster.running:
            cluster.start_server()
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(w.pid, signal.SIGKILL)

        monitor.stop.set()
        monitor.join(timeout=10)
        if shared is None:
            cluster.remove()
    runs = [docs[i] for i in ids]
    assert [r["status"] for r in runs] == [RunStatus.DONE.value] * RUNS
    assert monitor.regressions == []
    doubled = {k: v for k, v in monitor.outputs.items() if len(v) > 1}
    assert doubled == {}, "a step's committed output changed: it was committed twice"
    lines = [line.split() for line in Path(f"{log}.soak").read_text().splitlines()]
    ended = Counter(token for kind, _, _, token, _ in lines if kind == "E")
    started = Counter((run, step) for kind, run, step, _, _ in lines if kind == "S")
    for run in runs:
        for step in run["steps"]:
            assert ended[step["output"]] == 1  # the committed execution, exactly once
    assert sum(started.values()) >= RUNS * len(STEPS)
    assert monitor.reads > 0
    # Steps were in flight at each crash: started before it, ended after it,
    # so their commits went through the outage.
    begun = {token: float(at) for kind, _, _, token, at in lines if kind == "S"}
    for mode, wall, *_ in outages:
        caught = [t for kind, _, _, t, at in lines if kind == "E" and begun[t] < wall < float(at)]
        assert caught, f"no step was in flight when the server stopped ({mode})"
    print(
        f"\nrestarts {outages}, done {finished - up:.2f}s later: executions "
        f"{sum(started.values())} for {RUNS * len(STEPS)} steps, "
        f"re-executed {sum(n - 1 for n in started.values())}, "
        f"recoveries {sum(r.get('recoveries', 0) for r in runs)}, monitor reads "
        f"{monitor.reads} (failed {monitor.failures})"
    )
