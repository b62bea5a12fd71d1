"""Rich renderings of runs for the terminal."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text

from streamline_core import RunStatus, StepStatus, WorkflowRun

__all__ = ["STATUS_STYLE", "runs_table", "run_detail", "duration"]

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


def runs_table(runs: list[WorkflowRun], title: str = "Runs") -> Table:
    """One row per run."""
    table = Table(title=title, title_justify="left")
    table.add_column("run id", no_wrap=True)
    for col in ("workflow", "status", "step", "created", "updated", "recoveries"):
        table.add_column(col)
    for r in runs:
        status = r.status.value + (" (paused)" if r.paused else "")
        table.add_row(
            r.id,
            f"{r.workflow_id} v{r.workflow_version}",
            _status(status),
            r.current_step_id or "-",
            _when(r.created_at),
            _when(r.updated_at),
            str(r.recoveries),
        )
    return table


def run_detail(run: WorkflowRun) -> Table:
    """A run's steps with status, attempts, timings and errors."""
    waiting = ""
    if run.wait is not None:
        waiting = f" — waiting ({run.wait.kind}"
        waiting += f": {run.wait.reason}" if run.wait.reason else ""
        waiting += f", event {run.wait.event!r}" if run.wait.event else ""
        waiting += f", until {_when(run.wait.until)}" if run.wait.until else ""
        waiting += ")"
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
        table.add_row(
            s.step_id,
            _status(s.status.value),
            str(s.attempts),
            _when(s.started_at),
            duration(s.started_at, s.ended_at),
            detail,
        )
    if run.error is not None:
        table.caption = f"error {run.error.code}: {run.error.message}"
    return table
