"""``streamline runs migrate`` and ``streamline runs fork``: runs onto another workflow version.

Both need the definitions of the versions involved, so they load your app
(``--app module:engine``, as ``runs start`` does), whose engine registers
them; the engine is used as a client (it is not started). Errors are one
line; exit codes as in docs/cli.md (a bad ``--map`` is a usage error, 2).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

from streamline_cli._support import EXIT_USAGE, cli_errors, fail, load_engine
from streamline_cli.app import AppOption, JsonOption, runs_app
from streamline_cli.render import run_json
from streamline_core import Engine, WorkflowNotFoundError, WorkflowRun

__all__ = ["fork_run", "migrate_run", "parse_step_map"]

T = TypeVar("T")

MapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--map",
        metavar="OLD=NEW",
        help="An old step id and the new version's step it becomes (repeat for several).",
    ),
]
AppStoreOption = Annotated[
    str | None,
    typer.Option(
        "--store", help="Store URL for an app that builds Engine() (sets $STREAMLINE_STORE)."
    ),
]


def _on_app(target: str, store: str | None, action: Callable[[Engine], Awaitable[T]]) -> T:
    """Run ``action`` on the app's engine (a client: not started), errors as one line."""
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


def parse_step_map(values: list[str] | None) -> dict[str, str] | None:
    """``["old=new", ...]`` -> ``{"old": "new"}``; a malformed or repeated entry exits 2."""
    if not values:
        return None
    out: dict[str, str] = {}
    for value in values:
        old, sep, new = value.partition("=")
        old, new = old.strip(), new.strip()
        if not sep or not old or not new:
            fail(f"--map {value!r} is not OLD=NEW (an old step id = a new step id)", EXIT_USAGE)
        if old in out:
            fail(f"--map names step {old!r} twice", EXIT_USAGE)
        out[old] = new
    return out


@runs_app.command("migrate")
def migrate_run(
    app_target: AppOption,
    to_version: Annotated[
        str, typer.Option("--to-version", metavar="V", help="The version to move onto.")
    ],
    run_id: Annotated[
        str | None,
        typer.Argument(metavar="[RUN_ID]", help="The run; omit with --workflow/--from-version."),
    ] = None,
    step_map: MapOption = None,
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", help="Without RUN_ID: every active run of this workflow..."),
    ] = None,
    from_version: Annotated[
        str | None, typer.Option("--from-version", metavar="V", help="...on this version.")
    ] = None,
    store: AppStoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move a run that no worker is executing onto another version of its workflow."""
    mapping = parse_step_map(step_map)
    if run_id is not None and (workflow is not None or from_version is not None):
        fail("give RUN_ID, or --workflow and --from-version, not both", EXIT_USAGE)
    if run_id is None:
        if workflow is None or from_version is None:
            fail("give RUN_ID, or --workflow and --from-version", EXIT_USAGE)

        async def many(engine: Engine) -> int:
            return await engine.runs.migrate(
                workflow_id=workflow,
                from_version=from_version,
                to_version=to_version,
                step_map=mapping,
            )

        count = _on_app(app_target, store, many)
        if as_json:
            _print_json({"migrated": count})
        else:
            plural = "" if count == 1 else "s"
            typer.echo(
                f"migrated {count} run{plural} of {workflow} v{from_version} to v{to_version}"
            )
        return
    chosen = run_id

    async def one(engine: Engine) -> WorkflowRun:
        return await engine.migrate_run(chosen, to_version, mapping)

    run = _on_app(app_target, store, one)
    if as_json:
        _print_json(run_json(run))
    else:
        typer.echo(
            f"migrated {run.id} to {run.workflow_id} v{run.workflow_version}: "
            f"{run.status.value} at step {run.current_step_id!r}"
        )


@runs_app.command("fork")
def fork_run(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    from_step: Annotated[
        str, typer.Option("--from-step", metavar="STEP", help="The new run starts at this step.")
    ],
    app_target: AppOption,
    to_version: Annotated[
        str | None,
        typer.Option(
            "--to-version", metavar="V", help="Version of the new run (default: the latest)."
        ),
    ] = None,
    step_map: MapOption = None,
    store: AppStoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a NEW run from a step, with the outputs of a run's earlier steps (it stays as is)."""
    mapping = parse_step_map(step_map)

    async def go(engine: Engine) -> WorkflowRun:
        source = await engine.runs.get(run_id)
        if source is None:
            raise WorkflowNotFoundError(f"run {run_id!r} not found")
        wf = engine.get_workflow(source.workflow_id, to_version)
        return await wf.fork(source.id, from_step, step_map=mapping)

    run = _on_app(app_target, store, go)
    if as_json:
        _print_json(run_json(run))
    else:
        typer.echo(
            f"forked {run_id} as {run.id} ({run.workflow_id} v{run.workflow_version}, "
            f"from step {from_step!r}); a worker runs it"
        )
