"""The dashboard's view of runs without the engine's internal ones.

Each schedule is kept as a run of the internal workflow ``streamline.schedule``
(it waits between ticks for as long as the schedule exists): counted with the
application's runs, it would make the overview say "3 waiting" about nothing
anyone waits for. The pages leave those runs out unless asked
(``?internal=1``), using only ``runs.find`` and ``runs.count`` — no Store
filter of its own:

- counts are ``count(filters) - count(filters, workflow_id=internal)``, the
  second a lookup on the workflow index that is skipped when no internal run
  exists;
- a page of runs reads a little more than it shows (as many extra runs as there
  are internal ones matching, bounded) and keeps the application's; its next
  cursor is the keyset of the last run it shows, so no run is skipped or
  shown twice.
"""

from __future__ import annotations

from typing import Any

from streamline_core import Engine, RunStatus, WorkflowRun
from streamline_core.run import encode_cursor
from streamline_core.schedule_info import SCHEDULE_WORKFLOW

__all__ = ["INTERNAL_WORKFLOWS", "counts_by_status", "find_visible", "is_internal"]

INTERNAL_WORKFLOWS = (SCHEDULE_WORKFLOW,)
"""Workflows the engine runs for itself."""
MAX_EXTRA = 200
"""At most this many runs read beyond the page size per store read."""


def is_internal(run: WorkflowRun) -> bool:
    """Whether ``run`` belongs to the engine itself (a schedule's run)."""
    return run.workflow_id in INTERNAL_WORKFLOWS


async def counts_by_status(engine: Engine, *, internal: bool) -> dict[str, int]:
    """Runs per status; without ``internal``, the engine's own runs are not counted.

    ``done``, usually the most runs, is the total less the others: a count
    with no filter is cheap (a store may answer it from an index), while a
    count by status may read the whole table (SQLite has no status index).
    """
    rest = [s for s in RunStatus if s != RunStatus.DONE]
    counts = {s.value: await engine.runs.count(status=s) for s in rest}
    counts[RunStatus.DONE.value] = max(await engine.runs.count() - sum(counts.values()), 0)
    if internal or not await engine.runs.count(workflow_id=list(INTERNAL_WORKFLOWS)):
        return {s.value: counts[s.value] for s in RunStatus}
    for s in RunStatus:
        if counts[s.value]:
            own = await engine.runs.count(status=s, workflow_id=list(INTERNAL_WORKFLOWS))
            counts[s.value] = max(counts[s.value] - own, 0)
    return {s.value: counts[s.value] for s in RunStatus}


async def find_visible(
    engine: Engine,
    *,
    internal: bool,
    limit: int,
    cursor: str | None = None,
    sort: str = "-created_at",
    **filters: Any,
) -> tuple[list[WorkflowRun], str | None]:
    """One page of runs and its next cursor, without the engine's own unless ``internal``.

    A ``workflow_id`` filter is taken as asked (naming the internal workflow
    shows its runs).

    Raises:
        ValidationError: A bad filter or cursor (from ``engine.runs``).
    """
    runs = engine.runs
    if internal or filters.get("workflow_id"):
        page = await runs.find(limit=limit, cursor=cursor, sort=sort, **filters)
        return page.items, page.next_cursor
    hidden = await runs.count(
        workflow_id=list(INTERNAL_WORKFLOWS),
        **{k: v for k, v in filters.items() if k != "workflow_id"},
    )
    if not hidden:
        page = await runs.find(limit=limit, cursor=cursor, sort=sort, **filters)
        return page.items, page.next_cursor
    field = sort.lstrip("-")
    shown: list[WorkflowRun] = []
    while True:
        want = limit - len(shown) + min(hidden, MAX_EXTRA)
        page = await runs.find(limit=want, cursor=cursor, sort=sort, **filters)
        rest = [r for r in page.items if not is_internal(r)]
        room = limit - len(shown)
        shown.extend(rest[:room])
        if len(rest) > room:  # this read holds more than the page: resume after its last shown
            last = shown[-1]
            return shown, encode_cursor(getattr(last, field), last.id)
        if page.next_cursor is None:
            return shown, None
        cursor = page.next_cursor
        if len(shown) == limit:
            return shown, cursor
