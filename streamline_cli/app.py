"""``streamline`` command line (Typer + Rich).

Exit codes (the table in docs/cli.md): 0 success; 1 the command failed (an
unknown run, workflow or database, a run in the wrong state, a store that
cannot be reached, opened, read or written); 2 usage error (bad options or
arguments, bad JSON, a malformed store URL or an unknown scheme, a
MODULE:ATTRIBUTE that is not an Engine); 130 interrupted. Every error is one
line on stderr, never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import textwrap
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Annotated, Any, TypeAlias, TypeVar

import typer
from rich.console import Console

from streamline_cli._support import (
    EXIT_USAGE,
    CommandError,
    StoreUse,
    cli_errors,
    fail,
    load_engine,
    one_line,
    parse_json,
    store_url,
)
from streamline_cli.dashboard import dashboard
from streamline_cli.render import TRACEBACK_TAIL, run_detail, run_json, runs_table
from streamline_core import (
    Engine,
    Event,
    RunPage,
    RunStatus,
    WorkflowNotFoundError,
    WorkflowRun,
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
events_app = typer.Typer(help="Send events to waiting runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(events_app, name="events")

console = Console(highlight=False)

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="STREAMLINE_STORE",
        show_envvar=False,
        help="Store URL (sqlite:///path.db, mongodb://host/db). "
        "Default: $STREAMLINE_STORE, else sqlite:///./streamline.db.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AppOption = Annotated[
    str,
    typer.Option(
        "--app",
        metavar="MODULE:ATTRIBUTE",
        help="Your Engine (or a factory), which registers the workflow definitions.",
    ),
]
_STATUSES = [s.value for s in RunStatus]


def _version() -> str:
    try:
        return version("streamline")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"streamline {_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Durable workflows on the database you already run."""


def _with_engine(store: str | None, use: StoreUse, action: Callable[[Engine], Awaitable[T]]) -> T:
    """Run ``action`` on a client engine over the store, turning every error into one line."""
    url = store_url(store, use)

    async def go() -> T:
        engine = Engine(url)
        try:
            return await action(engine)
        finally:
            await engine.shutdown()

    with cli_errors(url):
        return asyncio.run(go())


def _with_app(target: str, store: str | None, action: Callable[[Engine], Awaitable[T]]) -> T:
    """Run ``action`` on the app's engine (a client: not started)."""
    with cli_errors(store):
        engine = load_engine(target, store=store)

        async def go() -> T:
            try:
                return await action(engine)
            finally:
                await engine.shutdown()

        return asyncio.run(go())


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


async def _require(engine: Engine, run_id: str) -> WorkflowRun:
    run = await engine.runs.get(run_id)
    if run is None:
        raise WorkflowNotFoundError(f"run {run_id!r} not found")
    return run


def _statuses(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    chosen = [v.strip().lower() for value in values for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in _STATUSES]
    if unknown:
        fail(f"unknown status {unknown[0]!r} (one of {', '.join(_STATUSES)})", EXIT_USAGE)
    return chosen


# --- demo ---------------------------------------------------------------------------


@app.command()
def demo(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store URL for the demo, shared by its worker processes "
            "(default: a fresh SQLite file).",
        ),
    ] = None,
) -> None:
    """Watch a run survive its worker being killed (SIGKILL) on embedded SQLite."""
    from streamline_cli.demo import run_demo

    with cli_errors(store):
        code = asyncio.run(run_demo(store, console))
    raise typer.Exit(code)


# --- runs ---------------------------------------------------------------------------


@runs_app.command("list")
def list_runs(
    store: StoreOption = None,
    workflow: Annotated[
        list[str] | None, typer.Option(help="Only this workflow (repeat for several).")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Only this status (repeat, or comma-separate: done,failed). "
            f"One of {', '.join(_STATUSES)}."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first."""
    statuses = _statuses(status)
    workflows = workflow or None
    page = _with_engine(
        store, "read", lambda e: e.runs.find(workflow_id=workflows, status=statuses, limit=limit)
    )
    if as_json:
        _print_json({"runs": [run_json(r) for r in page.items], "next_cursor": page.next_cursor})
        return
    if not page.items:
        console.print("no runs")
        return
    console.print(runs_table(page.items, width=console.width))
    if page.next_cursor:
        console.print(f"[dim]more runs exist; raise --limit (now {limit})[/dim]")


@runs_app.command("show")
def show_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    store: StoreOption = None,
    as_json: JsonOption = False,
    full_traceback: Annotated[
        bool,
        typer.Option(
            "--traceback",
            help="Print each failed step's whole traceback (default: its last "
            f"{TRACEBACK_TAIL} lines).",
        ),
    ] = False,
) -> None:
    """Show a run's steps with status, attempts, timings, errors, its parent and its children."""

    async def read(engine: Engine) -> tuple[WorkflowRun, RunPage]:
        run = await _require(engine, run_id)
        kids = await engine.runs.find(parent_run_id=run.id, sort="created_at", limit=CHILDREN_SHOWN)
        return run, kids

    run, kids = _with_engine(store, "read", read)
    if as_json:
        _print_json({**run_json(run), "children": [_child_json(k) for k in kids.items]})
    else:
        console.print(
            run_detail(
                run,
                full_traceback=full_traceback,
                children=kids.items,
                more_children=kids.next_cursor is not None,
            )
        )


CHILDREN_SHOWN = 100
"""Child runs ``runs show`` lists."""


def _child_json(child: WorkflowRun) -> dict[str, object]:
    return {
        "id": child.id,
        "workflow_id": child.workflow_id,
        "status": child.status.value,
        "parent_step_id": child.parent_step_id,
        "detached": child.detached,
    }


@runs_app.command("resume")
def resume_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    store: StoreOption = None,
    payload: Annotated[
        str, typer.Option(metavar="JSON", help="JSON payload (the waiting step's output).")
    ] = "null",
) -> None:
    """Resume a run waiting on ctx.wait."""
    value = parse_json("--payload", payload)
    run = _with_engine(store, "write", lambda e: e.runs.resume(run_id, value))
    console.print(f"resumed {run.id}: now {run.status.value}")


@runs_app.command("cancel")
def cancel_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    store: StoreOption = None,
    reason: Annotated[str | None, typer.Option(help="Why (stored on the run).")] = None,
) -> None:
    """Cancel an active run."""
    run = _with_engine(store, "write", lambda e: e.runs.cancel(run_id, reason))
    console.print(f"cancelled {run.id}")


@runs_app.command("pause")
def pause_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")], store: StoreOption = None
) -> None:
    """Pause an active run: no worker claims it until unpause (a running step still commits)."""
    run = _with_engine(store, "write", lambda e: e.runs.pause(run_id))
    console.print(f"paused {run.id} ({run.status.value})")


@runs_app.command("unpause")
def unpause_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")], store: StoreOption = None
) -> None:
    """Let a paused run be claimed again."""
    run = _with_engine(store, "write", lambda e: e.runs.unpause(run_id))
    console.print(f"unpaused {run.id} ({run.status.value})")


@runs_app.command("rewind")
def rewind_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    step: Annotated[
        str, typer.Option("--step", help="Re-run from this step (it and later steps are reset).")
    ],
    store: StoreOption = None,
) -> None:
    """Re-run a run (in any status) from a step; earlier outputs stay."""
    run = _with_engine(store, "write", lambda e: e.runs.rewind_to(run_id, step))
    console.print(f"rewound {run.id} to step {step!r}: now {run.status.value}")


@runs_app.command("delete")
def delete_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")], store: StoreOption = None
) -> None:
    """Delete a finished (done, failed or cancelled) run."""

    async def go(engine: Engine) -> int:
        run = await _require(engine, run_id)
        if not run.is_terminal:
            raise CommandError(
                f"run {run_id!r} is {run.status.value}; only finished runs can be deleted "
                "(cancel it first)"
            )
        return await engine.runs.delete(
            status=run.status, run_ids=[run.id], tenant_id=run.tenant_id
        )

    deleted = _with_engine(store, "write", go)
    if deleted != 1:
        fail(f"run {run_id!r} changed while being deleted; nothing was deleted")
    console.print(f"deleted {run_id}")


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def _age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (or plain seconds) -> seconds."""
    value = text.strip().lower()
    unit = _AGE_UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit is not None else value
    try:
        amount = float(number)
    except ValueError:
        fail(f"--older-than {text!r} is not an age like 30d, 12h, 90m or 45s", EXIT_USAGE)
    if not amount >= 0 or amount == float("inf"):
        fail(f"--older-than {text!r} must be a finite age >= 0", EXIT_USAGE)
    return amount * (unit or 1)


@runs_app.command("prune")
def prune_runs(
    status: Annotated[
        list[str],
        typer.Option("--status", help="done, failed and/or cancelled (repeat or comma-separate)."),
    ],
    older_than: Annotated[
        str, typer.Option("--older-than", help="Age by end time: 30d, 12h, 90m, 45s.")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    store: StoreOption = None,
) -> None:
    """Delete finished runs older than an age (archive plugins see each batch first)."""
    statuses = _statuses(status) or []
    age = _age(older_than)

    async def go(engine: Engine) -> int:
        return await engine.runs.prune(status=statuses, older_than=age, dry_run=dry_run)

    count = _with_engine(store, "read" if dry_run else "write", go)
    verb = "would delete" if dry_run else "deleted"
    plural = "s" if count != 1 else ""
    console.print(f"{verb} {count} run{plural} ({', '.join(statuses)}, older than {older_than})")


@runs_app.command("start")
def start_run(
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW")],
    app_target: AppOption,
    input_json: Annotated[
        str, typer.Option("--input", metavar="JSON", help="The run's input, as JSON.")
    ] = "null",
    idempotency_key: Annotated[
        str | None, typer.Option(help="Return the active run with this key instead of a new one.")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store URL for an app that builds Engine() (sets $STREAMLINE_STORE).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Start a run of WORKFLOW; a worker (streamline worker) executes it."""
    value = parse_json("--input", input_json)

    async def go(engine: Engine) -> WorkflowRun:
        return await engine.get_workflow(workflow).start(value, idempotency_key=idempotency_key)

    run = _with_app(app_target, store, go)
    if as_json:
        _print_json(run_json(run))
    else:
        console.print(f"started {run.id} ({run.workflow_id} v{run.workflow_version})")


# --- events -------------------------------------------------------------------------


@events_app.command("emit")
def emit_event(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    data: Annotated[str, typer.Option(metavar="JSON", help="The event's data, as JSON.")] = "null",
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            metavar="RUN_ID",
            help="Only this run (kept in its mailbox if it is not waiting yet).",
        ),
    ] = None,
    store: StoreOption = None,
    app_target: Annotated[
        str | None,
        typer.Option(
            "--app",
            metavar="MODULE:ATTRIBUTE",
            help="Your Engine, for workflows an event starts (triggers) or cancels (cancel_on).",
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            metavar="KEY",
            help="Key of the runs the event's triggers start: emitting again starts none.",
        ),
    ] = None,
) -> None:
    """Emit an event: resume the runs waiting for it (ctx.wait_for).

    With --app, a broadcast also starts the workflows it triggers and cancels
    the runs whose cancel_on it matches.
    """
    value = parse_json("--data", data)

    async def go(engine: Engine) -> int:
        return await engine.emit_event(name, value, run_id=run, idempotency_key=idempotency_key)

    if app_target is not None:
        resumed = _with_app(app_target, store, go)
    else:
        resumed = _with_engine(store, "write", go)
    console.print(f"emitted {name!r}: {resumed} run(s) resumed")


# --- worker -------------------------------------------------------------------------

_SKIPPED_EVENTS = frozenset({"step:failed", "workflow:retry"})
"""Events the worker does not log: ``step:retry-scheduled`` or ``workflow:failed`` follows."""

_ERROR_LIMIT = 300
"""Characters of an error message in a worker log line."""


_ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)


class _WorkerFormatter(logging.Formatter):
    """The worker's format; a traceback is indented under the line it belongs to."""

    def formatException(self, ei: _ExcInfo) -> str:
        return textwrap.indent(super().formatException(ei), "    ")

    def formatStack(self, stack_info: str) -> str:
        return textwrap.indent(super().formatStack(stack_info), "    ")


class _StepFailureRecords(logging.Filter):
    """Drops the engine's own record of a failed attempt (``streamline.run``, with traceback).

    The worker logs that failure itself: one line per retry, and one line
    with the traceback under it when the run fails, so the traceback is not
    printed again under a second header for the same failure.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        failure = (
            record.name == "streamline.run"
            and record.exc_info is not None
            and getattr(record, "step_id", None) is not None
        )
        return not failure


def _worker_logging(*, events: bool) -> logging.Logger:
    """Log to stderr at INFO unless the app configured logging itself (then leave it alone).

    With ``events`` (the worker logs lifecycle events), the engine's records
    of failed attempts are left out: the worker's event lines carry them.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_WorkerFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        if events:
            handler.addFilter(_StepFailureRecords())
        root.addHandler(handler)
        root.setLevel(logging.INFO)
    return logging.getLogger("streamline.worker")


def _logfmt(value: object) -> str:
    """``value`` for a key=value line: quoted (JSON) when it has blanks, quotes or ``=``."""
    text = str(value)
    if text and not any(c.isspace() or c in '"=\\' or not c.isprintable() for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _error_text(error: BaseException) -> str:
    message = str(error) or type(error).__name__
    return one_line(f"{type(error).__name__}: {message}", _ERROR_LIMIT)


def _log_event(log: logging.Logger, event: Event) -> None:
    """One line for ``event``: INFO, a retry at WARNING, a failed run at ERROR with its traceback.

    A failed attempt that will be retried is the ``step:retry-scheduled``
    line (run, step, attempt, delay, error); ``step:failed`` and
    ``workflow:retry`` say the same and are not logged. A run that fails is
    the ``workflow:failed`` line, with the step's traceback under it.
    """
    if event.name in _SKIPPED_EVENTS:
        return
    data = event.data if isinstance(event.data, dict) else {}
    fields: dict[str, object] = {
        "event": event.name,
        "run": event.run_id,
        "workflow": event.workflow_id,
        "step": event.step_id,
    }
    level = logging.INFO
    exc_info: BaseException | None = None
    if event.name == "step:retry-scheduled":
        level = logging.WARNING
        delay = data.get("delay")
        fields["attempt"] = data.get("attempt")
        fields["delay"] = f"{delay:.2f}s" if isinstance(delay, int | float) else None
        fields["error"] = _error_text(event.error) if event.error else None
    elif event.name == "workflow:failed":
        level = logging.ERROR
        run_error = data.get("error") if isinstance(data.get("error"), dict) else None
        if run_error is not None:
            details = run_error.get("details")
            if isinstance(details, dict):
                fields["attempts"] = details.get("attempts")
            fields["code"] = run_error.get("code")
            fields["error"] = one_line(run_error.get("message", ""), _ERROR_LIMIT)
        elif event.error is not None:
            fields["error"] = _error_text(event.error)
        if event.error is not None and event.error.__traceback__ is not None:
            exc_info = event.error
    elif event.error is not None:
        fields["error"] = _error_text(event.error)
    line = " ".join(f"{k}={_logfmt(v)}" for k, v in fields.items() if v is not None)
    log.log(level, line, exc_info=exc_info)


@app.command()
def worker(
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:ATTRIBUTE", help="Your Engine (or a function that returns one)."
        ),
    ],
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Store URL for an app that builds Engine() (sets $STREAMLINE_STORE; "
            "the database is created if missing).",
        ),
    ] = None,
    drain_timeout: Annotated[
        float, typer.Option(help="Seconds in-flight steps get to finish on SIGTERM/SIGINT.")
    ] = 30.0,
    status_interval: Annotated[
        float, typer.Option(help="Seconds between status lines (0 to disable).")
    ] = 10.0,
    quiet: Annotated[
        bool,
        typer.Option(
            help="Do not log each lifecycle event (failures are then logged by the engine, "
            "with a traceback for every failed attempt)."
        ),
    ] = False,
) -> None:
    """Run an engine as a worker until SIGTERM/SIGINT, then drain and release leases.

    Logs one key=value line per lifecycle event (one per retry; a final
    failure with its traceback below it) and a periodic status line
    (claims, in flight, completed, failed, retries, recoveries, pickup lag).
    """
    if store is not None:
        store = store_url(store, "create")
    with cli_errors(store):
        engine = load_engine(target, store=store)
    log = _worker_logging(events=not quiet)
    if not quiet:
        engine.on("*", lambda event: _log_event(log, event))

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
            "started worker=%s store=%s workflows=%s",
            engine.worker_id,
            engine.store_url or type(engine.store).__name__,
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

    with cli_errors(engine.store_url):
        asyncio.run(serve())


app.command("dashboard")(dashboard)


def main() -> None:
    """Console-script entry point."""
    app()
