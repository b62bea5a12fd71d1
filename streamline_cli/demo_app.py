"""The demo's workflows and its worker process (``python -m streamline_cli.demo_app``).

Each worker prints one JSON line per lifecycle event on stdout, which the
``streamline demo`` parent turns into a timeline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

from streamline_core import Engine, Event, StepConfig, StepContext, Workflow

__all__ = ["register", "main"]


async def reserve(ctx: StepContext) -> dict[str, str]:
    return {"reservation": f"R-{ctx.input['order']}"}


async def charge(ctx: StepContext) -> dict[str, object]:
    # A slow payment call: the demo kills the worker in the middle of it.
    await asyncio.sleep(1.5)
    return {"charged": ctx.input["amount"], "key": ctx.idempotency_key()}


async def ship(ctx: StepContext) -> dict[str, str]:
    return {"tracking": f"TRK-{ctx.input['order']}"}


async def schedule(ctx: StepContext) -> dict[str, str]:
    return {"to": ctx.input["email"]}


async def nap(ctx: StepContext) -> None:
    await ctx.sleep(3)


async def send(ctx: StepContext) -> str:
    return f"reminder sent to {ctx.get_output('schedule')['to']}"


async def submit(ctx: StepContext) -> dict[str, object]:
    return {"amount": ctx.input["amount"]}


async def approve(ctx: StepContext) -> None:
    await ctx.wait("Manager approval", {"amount": ctx.input["amount"]})


async def pay(ctx: StepContext) -> str:
    return f"paid, approved by {ctx.get_output('approve')['by']}"


async def sync(ctx: StepContext) -> str:
    if ctx.attempt < 3:
        raise ConnectionError(f"upstream timeout (attempt {ctx.attempt})")
    return "synced"


def register(engine: Engine) -> dict[str, Workflow]:
    """Register the demo workflows on ``engine``."""
    return {
        "order": engine.workflow(
            "order", steps={"reserve": reserve, "charge": charge, "ship": ship}
        ),
        "reminder": engine.workflow(
            "reminder", steps={"schedule": schedule, "sleep": nap, "send": send}
        ),
        "approval": engine.workflow(
            "expense-approval", steps={"submit": submit, "approve": approve, "pay": pay}
        ),
        "flaky": engine.workflow(
            "flaky-sync",
            steps={"sync": StepConfig(sync, retries=5, retry_delay=0.4, retry_backoff="fixed")},
        ),
    }


async def run_worker(store: str, name: str, lease: float) -> None:
    """Run a worker until SIGTERM, printing events as JSON lines."""
    engine = Engine(
        store, worker_id=name, lease=lease, min_poll_interval=0.05, max_poll_interval=0.2
    )
    register(engine)

    def show(event: Event) -> None:
        line = {
            "t": time.time(),
            "worker": name,
            "pid": os.getpid(),
            "event": event.name,
            "run": event.run_id,
            "workflow": event.workflow_id,
            "step": event.step_id,
            "error": str(event.error) if event.error else None,
            "data": event.data if isinstance(event.data, (dict, str, int, type(None))) else None,
        }
        sys.stdout.write(json.dumps(line, default=str) + "\n")
        sys.stdout.flush()

    engine.on("*", show)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The demo parent holds our stdin: when it goes away (even killed), so do we.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def parent_gone() -> None:
        await reader.read()
        stop.set()

    watcher = asyncio.ensure_future(parent_gone())
    async with engine:
        sys.stdout.write(
            json.dumps(
                {"t": time.time(), "worker": name, "pid": os.getpid(), "event": "worker:ready"}
            )
            + "\n"
        )
        sys.stdout.flush()
        await stop.wait()
    watcher.cancel()


def main() -> None:
    """``python -m streamline_cli.demo_app STORE_URL NAME LEASE``."""
    store, name, lease = sys.argv[1], sys.argv[2], float(sys.argv[3])
    asyncio.run(run_worker(store, name, lease))


if __name__ == "__main__":
    main()
