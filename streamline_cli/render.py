"""Rich renderings of runs for the terminal."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from streamline_core import RunStatus, StepState, StepStatus, WorkflowRun
from streamline_core.run import WaitState

__all__ = [
    "STATUS_STYLE",
    "TRACEBACK_TAIL",
    "runs_table",
    "run_detail",
    "run_json",
    "duration",
    "step_traceback",
]

WIDE = 120
"""Terminal width from which ``runs_table`` shows every column."""

TRACEBACK_TAIL = 15
"""Lines of a step's traceback ``runs show`` prints unless asked for all of it."""

TRACEBACK_INDENT = 4

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

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


def _printable(text: str) -> str:
    """``text`` with tabs expanded and control characters (terminal escapes) made visible."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.expandtabs(4))


class _Indented:
    """``text`` indented, wrapped under the indent, without trailing blanks.

    Lines that wrap continue under ``hang`` (default: the indent).
    """

    def __init__(self, text: Text, indent: int = TRACEBACK_INDENT, hang: int | None = None) -> None:
        self.text = text
        self.indent = indent
        self.hang = indent if hang is None else hang

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width - max(self.indent, self.hang), 20)
        style = console.get_style(self.text.style) if self.text.style else None
        for i, line in enumerate(self.text.wrap(console, width, overflow="fold")):
            line.rstrip()
            yield Segment(" " * (self.indent if i == 0 else self.hang))
            for segment in line.render(console, end=""):
                yield Segment(segment.text, style + segment.style if style else segment.style)
            yield Segment.line()


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


def _abbreviated(value: Any, width: int = 60) -> str:
    shown = "" if value is None else _printable(repr(value))
    return shown if len(shown) <= width else shown[: width - 3] + "..."


def _flow_notes(step: StepState) -> list[str]:
    """A step's checkpoint (abbreviated) and compensation state, for ``runs show``."""
    notes: list[str] = []
    saved = step.checkpoint
    if isinstance(saved, dict) and "value" in saved:
        notes.append(f"checkpoint {_abbreviated(saved['value'], 48)}")
    elif isinstance(saved, dict) and isinstance(saved.get("maps"), dict):
        for entry in saved["maps"].values():
            done = len(entry.get("results") or {}) if isinstance(entry, dict) else 0
            count = entry.get("count", "?") if isinstance(entry, dict) else "?"
            notes.append(f"checkpoint: map {done}/{count} items done")
    if step.compensation is not None:
        notes.append(f"compensation {step.compensation}")
    return notes


def step_traceback(step: StepState, *, full: bool = False) -> Group | None:
    """Where ``step`` failed: its stored traceback under a line naming it, or ``None``.

    Without ``full`` only the last :data:`TRACEBACK_TAIL` lines are shown
    (the frames nearest the raise and the exception), with a note of how
    many were left out. The traceback is dimmed and indented; lines too long
    for the terminal wrap under the indent.
    """
    error = step.error
    if error is None or not error.traceback:
        return None
    lines = _printable(error.traceback.rstrip("\n")).splitlines()
    shown = lines if full else lines[-TRACEBACK_TAIL:]
    left_out = len(lines) - len(shown)
    header = Text.assemble(
        ("step ", ""),
        (step.step_id, "bold"),
        (f" failed (attempt {step.attempts}): ", ""),
        (_printable(f"{error.code}: {error.message}"), "red"),
    )
    parts = [_Indented(header, 0, hang=2)]
    if left_out:
        note = Text(
            f"... {left_out} earlier line{'s' if left_out != 1 else ''} "
            "(--traceback shows them all)",
            style="dim italic",
        )
        parts.append(_Indented(note))
    body = Text("\n".join(shown), style="dim", overflow="fold")
    parts.append(_Indented(body))
    return Group(*parts)


def children_table(children: list[WorkflowRun]) -> Table:
    """A run's child runs: id, workflow, status (and whether each is detached)."""
    table = Table(title="Child runs", title_justify="left")
    for col in ("child run", "workflow", "status", "started by step"):
        table.add_column(col)
    for child in children:
        table.add_row(
            child.id,
            child.workflow_id + (" (detached)" if child.detached else ""),
            _status(child.status.value),
            child.parent_step_id or "",
        )
    return table


def run_detail(
    run: WorkflowRun,
    *,
    full_traceback: bool = False,
    children: list[WorkflowRun] | None = None,
    more_children: bool = False,
) -> Group:
    """A run's steps with status, attempts, timings and errors; then where steps failed.

    Each step whose error carries a traceback gets it below the table (the
    last :data:`TRACEBACK_TAIL` lines, or all of it with ``full_traceback``).
    A child run names its parent; ``children`` (when given) are listed last.
    """
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
            detail = Text(_printable(f"{s.error.code}: {s.error.message}"), style="red")
        else:
            detail = Text(_abbreviated(s.output))
        for note in _flow_notes(s):
            detail.append(("\n" if detail.plain else "") + note, style="dim")
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
        table.caption = _printable(f"error {run.error.code}: {run.error.message}")
    if run.compensation is not None:
        saga = f"compensation {run.compensation}"
        table.caption = f"{table.caption} · {saga}" if table.caption else saga
    parts: list[Table | Text | Group] = [table]
    if run.parent_run_id is not None:
        parts.insert(
            0,
            Text(
                f"child of run {run.parent_run_id} (step {run.parent_step_id})"
                + (", detached" if run.detached else "")
            ),
        )
    for s in run.steps:
        block = step_traceback(s, full=full_traceback)
        if block is not None:
            parts += [Text(""), block]
    if children:
        parts += [Text(""), children_table(children)]
        if more_children:
            parts.append(Text("more child runs exist (runs list shows them all)", style="dim"))
    return Group(*parts)
