"""Crash-test worker: ``python -m tests.crash.worker_app DB LOG [LEASE [SLOTS]]``.

DB is a SQLite file, or a store URL (``postgresql://...``) used as it is.

Every step execution appends ``run_id step pid`` to LOG (one line, O_APPEND)
before it returns, so the parent can count executions per step. Step ``two``
of workflow ``crashy`` hangs while the file ``DB.hang`` exists, so the parent
can kill the worker in the middle of it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from streamline_core import Concurrency, Engine, StepContext

STEPS = ("one", "two", "three")


def record(log: str, ctx: StepContext) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.run_id} {ctx.step_id} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def build(engine: Engine, db: str, log: str) -> None:
    hang = db + ".hang"

    def step(name: str):  # type: ignore[no-untyped-def]
        async def handler(ctx: StepContext) -> str:
            record(log, ctx)
            if name == "two" and ctx.workflow_id == "crashy":
                while await asyncio.to_thread(os.path.exists, hang):
                    await asyncio.sleep(0.02)
            else:
                await asyncio.sleep(0.01)  # some work, so runs spread over workers
            return f"{name} by {os.getpid()}"

        return handler

    for wf in ("crashy", "bulk"):
        engine.workflow(wf, steps={s: step(s) for s in STEPS})

    def soak_step(name: str):  # type: ignore[no-untyped-def]
        async def handler(ctx: StepContext) -> str:
            token = f"{os.getpid()}-{time.monotonic_ns()}"
            stamp(log, "S", ctx, token)
            await asyncio.sleep(0.02)
            stamp(log, "E", ctx, token)
            return token

        return handler

    engine.workflow("soak", steps={s: soak_step(s) for s in STEPS})

    async def stubborn(ctx: StepContext) -> str:
        stamp(log, "S", ctx, "stubborn")
        try:
            while True:
                await asyncio.sleep(0.02)
        finally:
            stamp(log, "E", ctx, f"stubborn-signal={ctx.signal.is_set()}")

    engine.workflow("stubborn", steps={"hold": stubborn})

    def limited_step(name: str):  # type: ignore[no-untyped-def]
        async def handler(ctx: StepContext) -> str:
            stamp_limited(log, "S", ctx)
            await asyncio.sleep(0.005)
            stamp_limited(log, "E", ctx)
            return name

        return handler

    engine.workflow(
        "limited",
        steps={s: limited_step(s) for s in ("a", "b")},
        concurrency=LIMITED_CONCURRENCY,
    )


def limited_key(value: dict[str, str]) -> str:
    return value["k"]


LIMITED_CONCURRENCY = Concurrency(2, key=limited_key)
"""Workflow ``limited``: at most 2 runs per input ``k`` execute at once."""


def stamp_limited(log: str, kind: str, ctx: StepContext) -> None:
    """``S|E key run step pid monotonic_ns`` (one O_APPEND line) to ``LOG.limits``."""
    line = f"{kind} {ctx.input['k']} {ctx.run_id} {ctx.step_id} {os.getpid()} {time.time_ns()}\n"
    fd = os.open(log + ".limits", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def stamp(log: str, kind: str, ctx: StepContext, token: str) -> None:
    """``S|E run step token wallclock``: start and end instants of one execution."""
    line = f"{kind} {ctx.run_id} {ctx.step_id} {token} {time.time():.6f}\n"
    fd = os.open(log + ".soak", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


async def main(db: str, log: str, lease: float, slots: int) -> None:
    engine = Engine(
        db if "://" in db else f"sqlite:///{db}",
        lease=lease,
        max_concurrent_runs=slots,
        min_poll_interval=0.02,
        max_poll_interval=0.2,
        load_entry_point_plugins=False,
    )
    build(engine, db, log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with engine:
        print("ready", flush=True)
        await stop.wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(
        main(
            args[0],
            args[1],
            float(args[2]) if len(args) > 2 else 2.0,
            int(args[3]) if len(args) > 3 else 100,
        )
    )
