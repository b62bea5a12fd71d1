"""Plugin hooks (pluggy, project name ``"streamline"``).

Plugin layer: imports the model and ``definition`` (for types) only.

Each :class:`~streamline_core.engine.Engine` owns one ``PluginManager``. Plugins come
from ``Engine(plugins=[...])`` and from the entry-point group ``streamline``
(block one by name with ``STREAMLINE_DISABLE_PLUGINS=name1,name2``). The
built-in retry and polling policies and the cron and interval calculators
are themselves plugins registered with
``trylast=True``, so any user plugin answering first wins.

Rules for implementers:

* ``firstresult`` hooks (policies) are **sync and pure**: pluggy cannot await
  them, so an ``async def`` implementation is refused at registration with an
  error naming the hook.
* Observer hooks (events, step middleware) may be ``async``; the engine awaits
  them. An observer that raises is logged and reported as ``engine:error``; it
  never affects execution.

Hooks by lifecycle:

Events
    :func:`streamline_event`
Step middleware (observability only)
    :func:`streamline_before_step`, :func:`streamline_after_step`,
    :func:`streamline_step_error`
Retry policy
    :func:`streamline_retry_delay`
Scheduling
    :func:`streamline_poll_delay`, :func:`streamline_next_occurrence`
Retention
    :func:`streamline_archive`
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import pluggy

if TYPE_CHECKING:
    from streamline_core.definition import StepSpec
    from streamline_core.events import Event
    from streamline_core.run import StepState, WorkflowRun

__all__ = [
    "PROJECT",
    "hookspec",
    "hookimpl",
    "GIVE_UP",
    "FIRSTRESULT_HOOKS",
    "streamline_event",
    "streamline_before_step",
    "streamline_after_step",
    "streamline_step_error",
    "streamline_retry_delay",
    "streamline_poll_delay",
    "streamline_next_occurrence",
    "streamline_archive",
]

PROJECT: Final = "streamline"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class _GiveUp:
    def __repr__(self) -> str:
        return "GIVE_UP"


GIVE_UP: Final = _GiveUp()
"""Return from ``streamline_retry_delay`` to fail the step now, as when retries run out."""

FIRSTRESULT_HOOKS: Final = frozenset(
    {"streamline_retry_delay", "streamline_poll_delay", "streamline_next_occurrence"}
)


# --- Events -----------------------------------------------------------------


@hookspec
def streamline_event(event: Event) -> Any:
    """Observe every lifecycle event and every custom ``ctx.emit``.

    Called for each event the engine emits (``workflow:*``, ``step:*``,
    ``engine:error``, ``scheduler:error``, custom names), in the task that
    caused it. May be ``async``. Not firstresult: every implementation runs.

    Args:
        event: The :class:`~streamline_core.events.Event`.
    """


# --- Step middleware ----------------------------------------------------------


@hookspec
def streamline_before_step(run: WorkflowRun, step: StepState, attempt: int) -> Any:
    """Called just before a step's handler runs (each attempt). May be ``async``.

    Args:
        run: The run as stored when the attempt began.
        step: The step's state before the attempt.
        attempt: The attempt number, starting at 1.
    """


@hookspec
def streamline_after_step(run: WorkflowRun, step: StepState, output: Any) -> Any:
    """Called after a step's handler returned, before its commit. May be ``async``.

    Args:
        run: The run as stored when the attempt began.
        step: The step's state before the attempt.
        output: The (JSON-compatible) value the handler returned.
    """


@hookspec
def streamline_step_error(run: WorkflowRun, step: StepState, error: BaseException) -> Any:
    """Called when a step's attempt raised (including timeouts). May be ``async``.

    Args:
        run: The run as stored when the attempt began.
        step: The step's state before the attempt.
        error: The exception raised by the handler.
    """


# --- Retry policy ---------------------------------------------------------------


@hookspec(firstresult=True)
def streamline_retry_delay(
    run: WorkflowRun, step: StepState, config: StepSpec, attempt: int, error: BaseException
) -> float | _GiveUp | None:
    """Decide when a failed step is retried. **firstresult, sync.**

    Consulted only while attempts remain (``attempt < config.retries``) and never
    for ``NonRetriableError``; it cannot add attempts. The built-in backoff
    (registered ``trylast``) always answers.

    Args:
        run: The run as stored when the attempt began.
        step: The step's state before the attempt.
        config: The step's resolved options (``retries``, ``retry_delay``, ...).
        attempt: The attempt that just failed, starting at 1.
        error: The exception it raised.

    Returns:
        Seconds to wait before the next attempt, :data:`GIVE_UP` to fail the
        step now, or ``None`` for no opinion (the next plugin decides).
    """


# --- Scheduling -------------------------------------------------------------------


@hookspec(firstresult=True)
def streamline_poll_delay(stats: dict[str, Any]) -> float | None:
    """Seconds an idle worker waits before polling the store again. **firstresult, sync.**

    Called after every claim attempt. The built-in policy (``trylast``) backs
    off from ``min_poll_interval`` doubling to ``max_poll_interval`` while idle,
    with ±20 % jitter, and resets when work is found.

    Args:
        stats: ``claimed`` (runs claimed by the last attempt), ``idle_polls``
            (consecutive empty polls), ``in_flight``, ``free_slots``,
            ``min_poll_interval``, ``max_poll_interval``.

    Returns:
        Seconds, or ``None`` for no opinion.
    """


@hookspec(firstresult=True)
def streamline_next_occurrence(schedule: Any, after: datetime) -> datetime | None:
    """Next time a recurring schedule fires after ``after``. **firstresult, sync.**

    Called by the schedule runner each time a schedule wakes (and once at
    ``engine.schedule(...)`` to check the shape), and by ``backfill``.
    Recurrence calculators implement this for the shapes they understand and
    return ``None`` for others. The built-in cron (``schedule.cron``) and
    interval (``schedule.every``) calculators are registered ``trylast``; a
    plugin adds a shape by answering for the ``schedule.spec`` values it knows
    (``engine.schedule(name, wf, spec=...)``).

    Args:
        schedule: A :class:`~streamline_core.recurrence.Recurrence` (``name``,
            ``cron``, ``every``, ``spec``, ``timezone``).
        after: An aware UTC datetime.

    Returns:
        The next aware datetime strictly after ``after``, or ``None`` when this
        plugin does not know the schedule's shape (or it never fires again).
    """


@hookspec
def streamline_archive(runs: list[WorkflowRun]) -> Any:
    """Receive a batch of finished runs just before retention deletes them.

    Called by a started worker's retention sweep (``Engine(retention=...)``)
    and by ``engine.runs.prune`` / ``streamline runs prune``, once per batch
    (up to ``Retention.batch_size`` runs). May be ``async``. Raising keeps the
    whole batch: nothing is deleted, and the next sweep offers it again. With
    several workers sweeping at once a batch may be offered twice, so write
    archives idempotently (keyed by run id).

    Args:
        runs: The runs about to be deleted, oldest first.
    """
