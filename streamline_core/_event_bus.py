"""The user-facing event bus behind ``engine.on``: a plugin on the ``streamline_event`` hook.

Plugin layer: imports ``hooks`` and ``events``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable

from streamline_core.events import Event, EventHandler
from streamline_core.hooks import hookimpl

__all__ = ["EventBus"]

log = logging.getLogger("streamline.events")


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
