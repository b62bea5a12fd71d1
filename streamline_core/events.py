"""Lifecycle events: their names and the :class:`Event` every observer receives.

Model layer: imports nothing of streamline_core.

Event names are the original library's::

    workflow:started  workflow:completed  workflow:failed  workflow:waiting
    workflow:resumed  workflow:cancelled  workflow:recovered  workflow:retry
    step:started  step:completed  step:failed  step:waiting  step:skipped
    step:retry-scheduled
    workflow:compensating  step:compensated  step:compensation-failed
    engine:error  scheduler:error

plus any custom name a handler emits with ``ctx.emit``. Every event goes to
the ``streamline_event`` plugin hook; the user-facing bus (``engine.on``,
:mod:`streamline_core._event_bus`) is itself a plugin on that hook.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

__all__ = ["Event", "EventHandler", "LIFECYCLE_EVENTS"]

LIFECYCLE_EVENTS: tuple[str, ...] = (
    "workflow:started",
    "workflow:completed",
    "workflow:failed",
    "workflow:waiting",
    "workflow:resumed",
    "workflow:cancelled",
    "workflow:recovered",
    "workflow:retry",
    "step:started",
    "step:completed",
    "step:failed",
    "step:waiting",
    "step:skipped",
    "step:retry-scheduled",
    "workflow:compensating",
    "step:compensated",
    "step:compensation-failed",
    "engine:error",
    "scheduler:error",
)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a run (or to the engine).

    Attributes:
        name: Event name, e.g. ``"workflow:completed"``.
        run_id: The run concerned (``None`` for engine-wide events).
        step_id: The step concerned, when there is one.
        data: Event payload (output, wait data, custom data, ...).
        error: The exception, for failures and ``engine:error``.
        at: When it happened, on the engine's clock.
        workflow_id: The run's workflow, when known.
    """

    name: str
    run_id: str | None = None
    step_id: str | None = None
    data: Any = None
    error: BaseException | None = None
    at: datetime | None = None
    workflow_id: str | None = None


EventHandler: TypeAlias = Callable[[Event], Awaitable[None] | None]
