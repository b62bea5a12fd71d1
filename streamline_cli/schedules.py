"""``streamline schedules``: list, pause, unpause and trigger recurring schedules.

``list``, ``pause`` and ``unpause`` work from the store alone; ``trigger``
starts a run, so it loads the app (``--app module:engine``) that registers
the schedule's workflow.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from streamline_cli._support import cli_errors, load_engine, store_url
from streamline_cli.app import AppOption, JsonOption, StoreOption, app
from streamline_core import Engine, ScheduleInfo

__all__ = ["schedules_app"]

T = TypeVar("T")

schedules_app = typer.Typer(help="List and control recurring schedules.", no_args_is_help=True)
app.add_typer(schedules_app, name="schedules")
console = Console(highlight=False)
NameArgument = Annotated[str, typer.Argument(metavar="NAME", help="The schedule's name.")]


def _on_store(store: str | None, action: Callable[[Engine], Awaitable[T]]) -> T:
    url = store_url(store, "write")

    async def go() -> T:
        engine = Engine(url)
        try:
            return await action(engine)
        finally:
            await engine.shutdown()

    with cli_errors(url):
        return asyncio.run(go())


def _when(info: ScheduleInfo) -> str:
    if info.paused:
        return "paused"
    return "-" if info.next_fire_at is None else info.next_fire_at.isoformat()


@schedules_app.command("list")
def list_schedules(store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Every schedule in the store: workflow, recurrence, time zone, next fire, last run."""
    infos = _on_store(store, lambda e: e.schedules.list())
    if as_json:
        typer.echo(json.dumps([i.model_dump(mode="json") for i in infos], indent=2))
        return
    if not infos:
        console.print("no schedules")
        return
    table = Table("name", "workflow", "spec", "timezone", "next fire", "last run")
    for i in infos:
        table.add_row(i.name, i.workflow, str(i.spec), i.timezone, _when(i), i.last_run_id or "-")
    console.print(table)


@schedules_app.command("pause")
def pause_schedule(name: NameArgument, store: StoreOption = None) -> None:
    """Fire nothing until unpause (a worker that declares it again keeps it paused)."""
    info = _on_store(store, lambda e: e.schedules.pause(name))
    console.print(f"paused schedule {info.name}")


@schedules_app.command("unpause")
def unpause_schedule(name: NameArgument, store: StoreOption = None) -> None:
    """Resume the cadence; occurrences that passed while paused do not fire."""
    info = _on_store(store, lambda e: e.schedules.unpause(name))
    console.print(f"unpaused schedule {info.name} (next fire {_when(info)})")


@schedules_app.command("trigger")
def trigger_schedule(name: NameArgument, target: AppOption, store: StoreOption = None) -> None:
    """Start one run of the schedule's workflow now, outside the cadence."""
    with cli_errors(store):
        engine = load_engine(target, store=store)

        async def go() -> str:
            try:
                return (await engine.schedules.trigger(name)).id
            finally:
                await engine.shutdown()

        run_id = asyncio.run(go())
    console.print(f"started {run_id}")
