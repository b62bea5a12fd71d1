"""``streamline demo``: durability you can watch.

The parent process is the "web app": it starts four runs (an order whose
payment step is slow, a reminder that sleeps, an expense that waits for a
manager, a flaky sync that retries) and plays the manager. Workers are real
child processes. The first worker is killed with SIGKILL in the middle of the
payment step; a second worker takes over once the dead worker's lease expires,
and every run finishes. Nothing is lost, and only the interrupted step runs twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from streamline_cli._support import (
    EXIT_USAGE,
    CommandError,
    shared_across_processes,
    store_label,
)
from streamline_cli.demo_app import register
from streamline_cli.render import run_detail
from streamline_core import Engine, RunStatus, WorkflowRun

__all__ = ["run_demo"]

LEASE = 2.0
COLORS = {"worker-1": "cyan", "worker-2": "green", "you": "yellow", "demo": "bold"}


@dataclass
class _Demo:
    console: Console
    store_url: str
    t0: float = field(default_factory=time.time)
    executions: Counter[tuple[str, str]] = field(default_factory=Counter)
    labels: dict[str, str] = field(default_factory=dict)
    charge_started: asyncio.Event = field(default_factory=asyncio.Event)
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    approval_waiting: asyncio.Event = field(default_factory=asyncio.Event)

    def say(self, who: str, message: str) -> None:
        color = COLORS.get(who, "")
        self.console.print(
            f"[dim]+{time.time() - self.t0:5.2f}s[/dim]  [{color}]{who:<9}[/{color}] {message}"
        )

    def on_line(self, line: dict[str, Any]) -> None:
        name = line.get("event", "")
        who = line.get("worker", "?")
        run = self.labels.get(line.get("run") or "", line.get("workflow") or "")
        step = line.get("step")
        if name == "worker:ready":
            self.say(who, f"started (pid {line.get('pid')})")
        elif name == "step:started":
            self.executions[(run, step or "")] += 1
            self.say(who, f"{run}: step [bold]{step}[/bold] started")
            if run == "order" and step == "charge":
                self.charge_started.set()
        elif name == "step:completed":
            self.say(who, f"{run}: step {step} done")
        elif name == "step:failed":
            self.say(who, f"{run}: step {step} failed: [red]{line.get('error')}[/red]")
        elif name == "workflow:retry":
            data = line.get("data") or {}
            self.say(who, f"{run}: retry scheduled in {data.get('delay', 0):.2f}s")
        elif name == "workflow:waiting":
            data = line.get("data") or {}
            kind = data.get("kind")
            if kind == "timer":
                self.say(who, f"{run}: sleeping durably until {data.get('until', '')[11:19]}")
            else:
                self.say(who, f"{run}: waiting for a person ({data.get('reason')})")
                if run == "approval":
                    self.approval_waiting.set()
        elif name == "workflow:recovered":
            self.say(who, f"{run}: [bold]recovered[/bold] the dead worker's run at step {step}")
        elif name == "workflow:completed":
            self.say(who, f"{run}: [green]completed[/green]")
        elif name == "workflow:failed":
            self.say(who, f"{run}: [red]failed[/red]")


async def _spawn(demo: _Demo, name: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streamline_cli.demo_app",
        demo.store_url,
        name,
        str(LEASE),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )

    async def pump() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            try:
                demo.on_line(json.loads(raw))
            except ValueError:
                continue

    demo.pumps.append(asyncio.ensure_future(pump()))
    return proc


async def _until(
    event: asyncio.Event, proc: asyncio.subprocess.Process, timeout: float, what: str
) -> None:
    """Wait for ``event``; fail in one line if ``proc`` exits or ``timeout`` passes first."""
    waiter = asyncio.ensure_future(event.wait())
    exited = asyncio.ensure_future(proc.wait())
    try:
        done, _ = await asyncio.wait(
            {waiter, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        waiter.cancel()
        exited.cancel()
    if waiter in done:
        return
    if exited in done:
        raise CommandError(f"a demo worker exited (code {proc.returncode}) before {what}")
    raise CommandError(f"no demo worker got to {what} within {timeout:.0f} s")


async def _all_done(engine: Engine, ids: list[str]) -> list[WorkflowRun]:
    runs = []
    for run_id in ids:
        run = await engine.runs.get(run_id)
        assert run is not None
        runs.append(run)
    return runs


async def run_demo(store_url: str | None = None, console: Console | None = None) -> int:
    """Run the demo; returns the process exit code.

    Args:
        store_url: A store its worker processes can share (default: a fresh
            SQLite file in a temporary directory).
        console: Where the timeline goes.

    Raises:
        CommandError: The store cannot be shared across processes (exit 2),
            or a worker died or stalled before the demo could go on.
        WorkflowError: The store cannot be opened or written.
    """
    console = console or Console(highlight=False)
    tmp = None
    if store_url is None:
        tmp = tempfile.mkdtemp(prefix="streamline-demo-")
        store_url = f"sqlite:///{Path(tmp) / 'demo.db'}"
    elif not shared_across_processes(store_url):
        raise CommandError(
            f"the demo runs its workers in other processes, which cannot share {store_url}; "
            "use a sqlite:///path.db or mongodb://host/db store",
            EXIT_USAGE,
        )
    client = Engine(store_url, load_entry_point_plugins=False)
    procs: list[asyncio.subprocess.Process] = []
    try:
        return await _run(client, store_url, console, procs, temporary=tmp is not None)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await client.shutdown()


async def _run(
    client: Engine,
    store_url: str,
    console: Console,
    procs: list[asyncio.subprocess.Process],
    *,
    temporary: bool,
) -> int:
    demo = _Demo(console, store_url)
    console.rule("[bold]Streamline durability demo")
    console.print(f"store: [bold]{store_url}[/bold] ({store_label(store_url)})\n")
    wfs = register(client)
    runs = {
        "order": await wfs["order"].start({"order": "A-1001", "amount": 42}),
        "reminder": await wfs["reminder"].start({"email": "ada@example.com"}),
        "approval": await wfs["approval"].start({"amount": 120}),
        "flaky": await wfs["flaky"].start(),
    }
    for label, run in runs.items():
        demo.labels[run.id] = label
        demo.say("you", f"started [bold]{label}[/bold] ({run.workflow_id}, run {run.id[-8:]})")

    worker1 = await _spawn(demo, "worker-1")
    procs.append(worker1)
    await _until(demo.charge_started, worker1, 30, "step 'charge' of the order")
    await asyncio.sleep(0.4)
    os.kill(worker1.pid, signal.SIGKILL)
    await worker1.wait()
    demo.say(
        "demo",
        f"[bold red]SIGKILL worker-1 (pid {worker1.pid}) in the middle of step 'charge'[/bold red]",
    )
    worker2 = await _spawn(demo, "worker-2")
    procs.append(worker2)
    demo.say("demo", f"worker-2 takes over runs whose lease ({LEASE:.0f}s) has expired")

    async def approve() -> None:
        await asyncio.wait_for(demo.approval_waiting.wait(), 30)
        await asyncio.sleep(0.5)
        await wfs["approval"].resume(runs["approval"].id, {"by": "grace"})
        demo.say("you", "approval: resumed with {'by': 'grace'}")

    approver = asyncio.ensure_future(approve())
    demo.pumps.append(approver)
    ids = [r.id for r in runs.values()]
    deadline = time.time() + 60
    final: list[WorkflowRun] = []
    while time.time() < deadline:
        final = await _all_done(client, ids)
        if all(r.is_terminal for r in final):
            break
        await asyncio.sleep(0.1)
    approver.cancel()
    worker2.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(worker2.wait(), 10)
    except TimeoutError:
        worker2.kill()

    console.print()
    summary = Table(title="Every run finished after the crash", title_justify="left")
    for col in ("run", "status", "recoveries", "step executions"):
        summary.add_column(col)
    ok = True
    for label, run in zip(runs, final, strict=True):
        execs = ", ".join(f"{s.step_id}×{demo.executions[(label, s.step_id)]}" for s in run.steps)
        summary.add_row(label, run.status.value, str(run.recoveries), execs)
        ok = ok and run.status == RunStatus.DONE
    console.print(summary)
    console.print(run_detail(final[0]))
    charge_runs = demo.executions[("order", "charge")]
    console.print(
        f"\n[bold]order[/bold]: 'reserve' ran once, 'charge' ran {charge_runs}× "
        "(the kill interrupted it: steps are at-least-once, commits exactly-once — use "
        "ctx.idempotency_key() for the payment API), 'ship' ran once."
    )
    if temporary:
        console.print(
            f"[dim]The run history stays in {store_url}; inspect it with "
            f"`streamline runs list --store {store_url}`.[/dim]"
        )
    if not ok:
        console.print("[red]demo failed: not every run completed[/red]")
    return 0 if ok else 1
