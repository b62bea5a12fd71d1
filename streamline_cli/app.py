"""``streamline`` command line (Typer + Rich).

Exit codes: 0 success; 1 unknown run or a run in the wrong state; 2 usage
error (bad JSON included). Errors are one readable line on stderr.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from streamline_cli.render import run_detail, runs_table
from streamline_core import (
    Engine,
    Event,
    InvalidStateError,
    WorkflowError,
    WorkflowNotFoundError,
)

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    name="streamline",
    help="Durable workflows on the database you already run.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Inspect and control runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="STREAMLINE_STORE",
        help="Store URL (sqlite:///path.db, mongodb://host/db, memory://). "
        "Default: $STREAMLINE_STORE, else sqlite:///./streamline.db.",
    ),
]


def _fail(message: str, code: int) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", soft_wrap=True)
    raise typer.Exit(code)


def _with_engine(store: str | None, action: Callable[[Engine], Awaitable[T]]) -> T:
    async def go() -> T:
        try:
            engine = Engine(store)
        except WorkflowError as exc:
            _fail(str(exc), 2)
        try:
            return await action(engine)
        finally:
            await engine.shutdown()

    try:
        return asyncio.run(go())
    except (WorkflowNotFoundError, InvalidStateError) as exc:
        _fail(str(exc), 1)
    except WorkflowError as exc:
        _fail(f"{exc.code}: {exc}", 1)


@app.command()
def demo(
    store: Annotated[
        str | None,
        typer.Option("--store", help="Store URL for the demo (default: a fresh SQLite file)."),
    ] = None,
) -> None:
    """Watch a run survive its worker being killed (SIGKILL) on embedded SQLite."""
    from streamline_cli.demo import run_demo

    raise typer.Exit(asyncio.run(run_demo(store, console)))


@runs_app.command("list")
def list_runs(
    store: StoreOption = None,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 50,
) -> None:
    """List runs, newest first."""
    page = _with_engine(
        store, lambda e: e.runs.find(workflow_id=workflow, status=status, limit=limit)
    )
    console.print(runs_table(page.items))
    if page.next_cursor:
        console.print(f"[dim]more runs exist; raise --limit (now {limit})[/dim]")


@runs_app.command("show")
def show_run(run_id: str, store: StoreOption = None) -> None:
    """Show a run's steps with status, attempts, timings and errors."""

    async def get(engine: Engine) -> Any:
        run = await engine.runs.get(run_id)
        if run is None:
            raise WorkflowNotFoundError(f"run {run_id!r} not found")
        return run

    console.print(run_detail(_with_engine(store, get)))


@runs_app.command("resume")
def resume_run(
    run_id: str,
    store: StoreOption = None,
    payload: Annotated[
        str, typer.Option(help="JSON payload (the waiting step's output).")
    ] = "null",
) -> None:
    """Resume a run waiting on ctx.wait."""
    try:
        value = json.loads(payload)
    except ValueError as exc:
        _fail(f"--payload is not valid JSON: {exc}", 2)
    run = _with_engine(store, lambda e: e.runs.resume(run_id, value))
    console.print(f"resumed {run.id}: now {run.status.value}")


@runs_app.command("cancel")
def cancel_run(
    run_id: str,
    store: StoreOption = None,
    reason: Annotated[str | None, typer.Option(help="Why (stored on the run).")] = None,
) -> None:
    """Cancel an active run."""
    run = _with_engine(store, lambda e: e.runs.cancel(run_id, reason))
    console.print(f"cancelled {run.id}")


def _load_engine(target: str) -> Engine:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        _fail(f"expected MODULE:ATTRIBUTE (e.g. app.workers:engine), got {target!r}", 2)
    sys.path.insert(0, ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        _fail(f"cannot import {module_name!r}: {exc}", 2)
    engine = getattr(module, attr, None)
    if callable(engine) and not isinstance(engine, Engine):
        engine = engine()
    if not isinstance(engine, Engine):
        _fail(f"{target!r} is not a streamline Engine", 2)
    return engine


@app.command()
def worker(
    target: Annotated[str, typer.Argument(help="MODULE:ATTRIBUTE of your Engine (or a factory).")],
    drain_timeout: Annotated[
        float, typer.Option(help="Seconds in-flight steps get to finish on SIGTERM/SIGINT.")
    ] = 30.0,
    status_interval: Annotated[
        float, typer.Option(help="Seconds between status lines (0 to disable).")
    ] = 10.0,
    quiet: Annotated[bool, typer.Option(help="Do not log each lifecycle event.")] = False,
) -> None:
    """Run an engine as a worker until SIGTERM/SIGINT, then drain and release leases.

    Logs one key=value line per lifecycle event and a periodic status line
    (claims, in flight, completed, failed, retries, recoveries, pickup lag).
    """
    engine = _load_engine(target)
    log = logging.getLogger("streamline.worker")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )

    def on_event(event: Event) -> None:
        fields = {
            "event": event.name,
            "run": event.run_id,
            "workflow": event.workflow_id,
            "step": event.step_id,
            "error": str(event.error) if event.error else None,
        }
        log.info(" ".join(f"{k}={v}" for k, v in fields.items() if v is not None))

    if not quiet:
        engine.on("*", on_event)

    def status_line() -> str:
        s = engine.stats()
        return (
            f"status worker={engine.worker_id} claims={s['claims']:.0f} "
            f"in_flight={s['in_flight']:.0f} completed={s['completed']:.0f} "
            f"failed={s['failed']:.0f} retries={s['retries']:.0f} "
            f"recoveries={s['recoveries']:.0f} lag={s['last_pickup_lag']:.2f}s "
            f"max_lag={s['max_pickup_lag']:.2f}s"
        )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await engine.start()
        log.info(
            "started worker=%s workflows=%s",
            engine.worker_id,
            ",".join(sorted(engine.workflow_names)),
        )
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), status_interval or None)
            except TimeoutError:
                log.info(status_line())
        log.info("draining timeout=%.0fs in_flight=%d", drain_timeout, engine.in_flight)
        await engine.shutdown(timeout=drain_timeout)
        log.info("stopped; leases released; %s", status_line())

    asyncio.run(serve())


def main() -> None:
    """Console-script entry point."""
    app()
