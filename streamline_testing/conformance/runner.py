"""``streamline-conformance``: run the conformance suite for a harness, without pytest.

Usage::

    streamline-conformance mypkg.module:MyStoreHarness [--profile dev|ci] [--clause NAME]...
    python -m streamline_testing.conformance mypkg.module:MyStoreHarness

Prints one row per clause (its name, what it checks, pass/fail/skip and the
first line of a failure), grouped by the capability it checks (``claim``,
``transition``, ``heartbeat``, ...) with a tally per group, then a checklist
of the capabilities with what failed or was skipped in each, then the full
failures. Exit status: 0 when every
clause passes (skips allowed), 1 when any fails, 2 when the harness cannot
be loaded (or the command line is wrong).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from streamline_testing.conformance.harness import StoreHarness
from streamline_testing.conformance.suite import (
    ClauseResult,
    by_capability,
    list_clauses,
    run_clause,
)

__all__ = ["HarnessLoadError", "app", "load_harness", "main"]

app = typer.Typer(
    add_completion=False,
    help="Run the Streamline Store conformance suite against a backend's harness.",
)


class ProfileChoice(StrEnum):
    """The hypothesis profiles the runner offers."""

    dev = "dev"
    ci = "ci"


class HarnessLoadError(Exception):
    """The ``module:Class`` given to the runner does not name a usable harness."""


def load_harness(spec: str) -> type[StoreHarness]:
    """Import the harness class named by ``spec`` (``"package.module:ClassName"``).

    The current directory is importable, as with ``python -m``.

    Args:
        spec: ``module:attribute``; the attribute may be dotted (``mod:Outer.Harness``).

    Returns:
        The harness class.

    Raises:
        HarnessLoadError: When the module or attribute is missing, the import
            fails, or the object is not a harness class.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise HarnessLoadError(f"expected 'package.module:HarnessClass', got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: object = importlib.import_module(module_name)
    except Exception as exc:
        raise HarnessLoadError(
            f"cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    for part in attr.split("."):
        if not hasattr(target, part):
            raise HarnessLoadError(f"{module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not (isinstance(target, type) and issubclass(target, StoreHarness)):
        raise HarnessLoadError(
            f"{spec} is {target!r}, not a subclass of streamline_testing.conformance.StoreHarness"
        )
    if target.make_store is StoreHarness.make_store:
        raise HarnessLoadError(f"{spec} does not implement make_store()")
    return target


_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow"}
# Plain ASCII marks: CI logs are not always UTF-8.
_MARK = {"passed": "[green]PASS[/]", "failed": "[bold red]FAIL[/]", "skipped": "[yellow]SKIP[/]"}


def _tally(rows: list[ClauseResult]) -> str:
    passed = sum(r.outcome == "passed" for r in rows)
    ran = sum(r.outcome != "skipped" for r in rows)
    if ran == 0:
        return "skipped"
    failed = ran - passed
    return f"{passed}/{ran} passed" + (f", {failed} failed" if failed else "")


def _verdict(rows: list[ClauseResult]) -> str:
    if any(r.outcome == "failed" for r in rows):
        return _MARK["failed"]
    return _MARK["passed"] if any(r.outcome == "passed" for r in rows) else _MARK["skipped"]


def _table(results: list[ClauseResult], spec: str, profile: str) -> Table:
    """Every clause, grouped by the capability (part of the contract) it checks."""
    table = Table(title=f"Store conformance: {spec} (profile {profile})", title_justify="left")
    table.add_column("Clause", no_wrap=True)
    table.add_column("Checks", style="dim")
    table.add_column("Result", no_wrap=True)
    table.add_column("First line of the failure")
    for capability, rows in by_capability(results).items():
        table.add_row(f"[bold]{escape(capability)}[/]", "", f"[bold]{_tally(rows)}[/]", "")
        for r in rows:
            table.add_row(
                f"  {r.name}",
                escape(r.title.partition(": ")[2] or r.title),
                f"[{_STYLE[r.outcome]}]{r.outcome.upper()}[/]",
                escape(r.message),
            )
        table.add_section()
    return table


def _checklist(results: list[ClauseResult]) -> Table:
    """One row per capability: the backend author's checklist."""
    table = Table(title="Checklist by capability", title_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("Capability", no_wrap=True)
    table.add_column("Clauses", no_wrap=True)
    table.add_column("Failed or skipped")
    for capability, rows in by_capability(results).items():
        open_items = [f"{r.name} ({r.outcome})" for r in rows if r.outcome != "passed"]
        table.add_row(
            _verdict(rows), escape(capability), _tally(rows), escape(", ".join(open_items))
        )
    return table


@app.command()
def run(
    harness: Annotated[
        str, typer.Argument(help="The harness class, as 'package.module:HarnessClass'.")
    ],
    profile: Annotated[
        ProfileChoice,
        typer.Option(help="Hypothesis profile for the state machine: dev (fast) or ci (deeper)."),
    ] = ProfileChoice.dev,
    clause: Annotated[
        list[str] | None,
        typer.Option(
            "--clause",
            "-k",
            help="Run only clauses whose name contains this text (repeatable).",
        ),
    ] = None,
    details: Annotated[
        bool,
        typer.Option(help="Print each failure in full (traceback, failing steps) after the table."),
    ] = True,
) -> None:
    """Run every Store contract clause and the state machine for HARNESS."""
    _escape_what_the_terminal_cannot_print()
    # Logs of CI jobs are no terminal: keep rows readable instead of 80 columns wide.
    wide = sys.stdout.isatty() or "COLUMNS" in os.environ
    console = Console() if wide else Console(width=160)
    errors = Console(stderr=True)
    try:
        harness_class = load_harness(harness)
    except HarnessLoadError as exc:
        errors.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    names = [
        name for name, _ in list_clauses() if not clause or any(part in name for part in clause)
    ]
    if not names:
        errors.print(f"[bold red]error:[/] no clause matches {clause}")
        raise typer.Exit(2)
    results: list[ClauseResult] = []
    start = time.perf_counter()
    with console.status("") as status:
        for name in names:
            status.update(f"running {name}")
            results.append(run_clause(harness_class, name, profile=profile.value))
    console.print(_table(results, harness, profile.value))
    console.print(_checklist(results))
    failed = [r for r in results if r.outcome == "failed"]
    if details:
        for r in failed:
            console.print(Panel(escape(r.details.rstrip()), title=f"[bold red]{r.name}[/]"))
    counts = {o: sum(r.outcome == o for r in results) for o in ("passed", "failed", "skipped")}
    summary = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
    console.print(f"{summary} in {time.perf_counter() - start:.1f}s")
    raise typer.Exit(1 if failed else 0)


def _escape_what_the_terminal_cannot_print() -> None:
    # A CI log or a C locale may not take UTF-8: a failure's details (hypothesis
    # output, arrows) are printed with backslash escapes instead of crashing.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            reconfigure(errors="backslashreplace")


def main() -> None:
    """Entry point of the ``streamline-conformance`` console script."""
    app()
