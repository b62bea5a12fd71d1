"""``Emitter``: lifecycle events out of the engine, to plugins and ``engine.on`` handlers.

Bottom of the runtime: imports the plugin relay, the event bus and the model.
Events are not even built when nobody listens to their name, and a failing
observer becomes an ``engine:error`` event, never an exception in the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from streamline_core._event_bus import EventBus
from streamline_core._plugins import PluginRelay
from streamline_core._runtime.watchers import Watchers
from streamline_core.clock import Clock
from streamline_core.events import Event
from streamline_core.run import RunStatus, WorkflowRun
from streamline_core.stats import EngineStats

__all__ = ["Emitter"]

log = logging.getLogger("streamline.engine")


class Emitter:
    """Builds and delivers events; counts and announces the end of runs."""

    def __init__(
        self,
        plugins: PluginRelay,
        bus: EventBus,
        clock: Clock,
        counters: EngineStats,
        watchers: Watchers,
    ) -> None:
        self._plugins = plugins
        self._bus = bus
        self._clock = clock
        self._counters = counters
        self._watchers = watchers
        self.on_end: Callable[[WorkflowRun], Awaitable[None]] | None = None
        """Called after the final event of a child run or a cancelled run (child runs)."""

    def listens(self, name: str) -> bool:
        """Whether an event ``name`` would reach anyone (lets hot paths skip building it)."""
        return bool(self._plugins.observers) or self._bus.wants(name)

    async def emit(
        self,
        name: str,
        *,
        run: WorkflowRun | None = None,
        run_id: str | None = None,
        step_id: str | None = None,
        data: Any = None,
        error: BaseException | None = None,
        workflow_id: str | None = None,
    ) -> None:
        """Deliver event ``name`` about ``run`` (or ``run_id``) to every observer."""
        if not self._plugins.observers and not self._bus.wants(name):
            if name in ("engine:error", "scheduler:error") and error is not None:
                log.warning("%s: %s", name, error)
            return
        event = Event(
            name=name,
            run_id=run.id if run is not None else run_id,
            step_id=step_id,
            data=data,
            error=error,
            at=self._clock.now(),
            workflow_id=run.workflow_id if run is not None else workflow_id,
        )
        failures = await self._plugins.event(event)
        if failures and name != "engine:error":
            for exc in failures:
                await self.emit("engine:error", run_id=event.run_id, error=exc)

    async def observe(self, call: Awaitable[list[BaseException]], run_id: str) -> None:
        """Await a middleware hook call; each failure becomes an ``engine:error``."""
        for exc in await call:
            await self.emit("engine:error", run_id=run_id, error=exc)

    async def ended(self, run: WorkflowRun, error: BaseException | None = None) -> None:
        """If ``run`` is terminal: wake its watchers, count it, emit its final event."""
        if not run.is_terminal:
            return
        self._watchers.notify(run.id)
        if run.status == RunStatus.DONE:
            self._counters.completed += 1
            await self.emit("workflow:completed", run=run, data=run.output)
        elif run.status == RunStatus.FAILED:
            self._counters.failed += 1
            await self.emit(
                "workflow:failed",
                run=run,
                step_id=run.error.step_id if run.error else None,
                data={"error": run.error.model_dump(mode="json") if run.error else None},
                error=error,
            )
        else:
            await self.emit("workflow:cancelled", run=run)
        if self.on_end is not None and (
            run.parent_run_id is not None or run.status == RunStatus.CANCELLED
        ):
            await self.on_end(run)
