"""Rich renderings of runs for the terminal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from streamline_core import RunStatus, StepStatus, WorkflowRun
from streamline_core.run import WaitState

__all__ = ["STATUS_STYLE", "runs_table", "run_detail", "run_json", "duration"]

WIDE = 120
"""Terminal width from which ``runs_table`` shows every column."""

STATUS_STYLE: dict[str, str] = {
    RunStatus.DRAFT: "dim",
    RunStatus.RUNNING: "cyan",
    RunStatus.WAITING: "yellow",
    RunStatus.DONE: "green",
    RunStatus.FAILED: "red",
    RunStatus.CANCELLED: "magenta",
    StepStatus.PENDING: "dim",
    StepStatus.SKIPPED: "dim",
}


def _status(value: str) -> Text:
    return Text(value, style=STATUS_STYLE.get(value, ""))


def _when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


def duration(start: datetime | None, end: datetime | None) -> str:
    """Human duration between two instants (``-`` when unknown)."""
    if start is None or end is None:
        return "-"
    secs = (end - start).total_seconds()
    if secs < 1:
        return f"{secs * 1000:.0f} ms"
    if secs < 120:
        return f"{secs:.1f} s"
    return f"{secs / 60:.1f} min"


def run_json(run: WorkflowRun) -> dict[str, Any]:
    """The run as JSON-compatible data (what ``--json`` prints)."""
    return run.model_dump(mode="json")


def runs_table(runs: list[WorkflowRun], title: str = "Runs", width: int = WIDE) -> Table:
    """One row per run; below ``WIDE`` columns, a compact table that fits 80 columns.

    Run ids are never shortened (``runs show`` takes the whole id); the
    compact form drops the creation time and recoveries and shows the
    update time without the year.
    """
    wide = width >= WIDE
    table = Table(
        title=title,
        title_justify="left",
        box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD,
        pad_edge=wide,
    )
    table.add_column("run id", no_wrap=True)
    table.add_column("workflow", overflow="fold")
    table.add_column("status", overflow="fold")
    table.add_column("step", overflow="fold")
    if wide:
        table.add_column("created", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    if wide:
        table.add_column("recoveries")
    for r in runs:
        status = r.status.value + (" (paused)" if r.paused else "")
        row: list[str | Text] = [
            r.id,
            f"{r.workflow_id} v{r.workflow_version}",
            _status(status),
            r.current_step_id or "-",
        ]
        if wide:
            row += [_when(r.created_at), _when(r.updated_at), str(r.recoveries)]
        else:
            row.append(r.updated_at.strftime("%m-%d %H:%M:%S"))
        table.add_row(*row)
    return table


def _describe_wait(wait: WaitState) -> str:
    text: str = wait.kind
    text += f": {wait.reason}" if wait.reason else ""
    text += f", event {wait.event!r}" if wait.event else ""
    text += f", until {_when(wait.until)}" if wait.until else ""
    return text


def _last_wait(run: WorkflowRun) -> WaitState | None:
    """What the run waits for, or (once it ended) what it last waited for, if still recorded."""
    if run.wait is not None:
        return run.wait
    current = next((s for s in run.steps if s.step_id == run.current_step_id), None)
    return current.wait if current is not None else None


def run_detail(run: WorkflowRun) -> Table:
    """A run's steps with status, attempts, timings and errors."""
    waiting = ""
    wait = _last_wait(run)
    if wait is not None and run.is_terminal:
        # A run cancelled (or failed) while it waited keeps no live wait: say
        # what it was waiting for when it ended.
        waiting = f" while waiting ({_describe_wait(wait)})"
    elif wait is not None:
        waiting = f" — waiting ({_describe_wait(wait)})"
    title = (
        f"Run {run.id} · {run.workflow_id} v{run.workflow_version} · {run.status.value}"
        f"{' (paused)' if run.paused else ''}{waiting}"
    )
    table = Table(title=title, title_justify="left")
    for col in ("step", "status", "attempts", "started", "took", "output / error"):
        table.add_column(col)
    for s in run.steps:
        if s.error is not None:
            detail = Text(f"{s.error.code}: {s.error.message}", style="red")
        else:
            shown = "" if s.output is None else repr(s.output)
            detail = Text(shown if len(shown) <= 60 else shown[:57] + "...")
        step_status = s.status.value
        if run.is_terminal and s.status in (StepStatus.WAITING, StepStatus.RUNNING):
            step_status = f"{run.status.value} while {s.status.value}"
        table.add_row(
            s.step_id,
            _status(step_status),
            str(s.attempts),
            _when(s.started_at),
            duration(s.started_at, s.ended_at),
            detail,
        )
    if run.error is not None:
        table.caption = f"error {run.error.code}: {run.error.message}"
    return table
