"""Lifecycle events and the user-facing event bus (``engine.on``).

Event names are the original library's::

    workflow:started  workflow:completed  workflow:failed  workflow:waiting
    workflow:resumed  workflow:cancelled  workflow:recovered  workflow:retry
    step:started  step:completed  step:failed  step:waiting  step:skipped
    step:retry-scheduled
    engine:error  scheduler:error

plus any custom name a handler emits with ``ctx.emit``. Every event goes to
the ``streamline_event`` plugin hook; the bus is itself a plugin on that hook.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from streamline_core.hooks import hookimpl

__all__ = ["Event", "EventHandler", "EventBus", "LIFECYCLE_EVENTS"]

log = logging.getLogger("streamline.events")

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


class EventBus:
    """``engine.on(name)(handler)``: subscribe handlers to event names (``"*"`` for all)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[EventHandler]] = {}

    def on(
        self, name: str, handler: EventHandler | None = None
    ) -> Callable[[EventHandler], EventHandler]:
        """Subscribe ``handler`` to ``name``; usable as a decorator.

        Args:
            name: An event name, or ``"*"`` for every event.
            handler: A callable taking the :class:`Event`; may be ``async``.
        """

        def register(h: EventHandler) -> EventHandler:
            self._handlers.setdefault(name, []).append(h)
            return h

        if handler is not None:
            register(handler)
        return register

    def off(self, name: str, handler: EventHandler) -> None:
        """Unsubscribe ``handler`` from ``name`` (no error when absent)."""
        try:
            self._handlers.get(name, []).remove(handler)
        except ValueError:
            pass

    def wants(self, name: str) -> bool:
        """Whether anyone listens to ``name`` (directly or through ``"*"``)."""
        return bool(self._handlers.get(name) or self._handlers.get("*"))

    @hookimpl
    async def streamline_event(self, event: Event) -> None:
        """Deliver ``event`` to its subscribers; a failing handler is logged, never raised."""
        for h in (*self._handlers.get(event.name, ()), *self._handlers.get("*", ())):
            try:
                result = h(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("event handler %r failed on %s", h, event.name)
