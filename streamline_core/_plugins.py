"""One pluggy ``PluginManager`` per engine, behind a typed relay.

Plugin layer: imports ``hooks``, ``retry`` and the model; the runtime calls it.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pluggy

from streamline_core import hooks
from streamline_core.errors import ValidationError
from streamline_core.recurrence import CronCalculator, IntervalCalculator
from streamline_core.retry import BuiltinPollPolicy, BuiltinRetryPolicy

if TYPE_CHECKING:
    from streamline_core.definition import StepSpec
    from streamline_core.events import Event
    from streamline_core.run import StepState, WorkflowRun

__all__ = ["PluginRelay", "DISABLE_ENV"]

log = logging.getLogger("streamline.plugins")
DISABLE_ENV = "STREAMLINE_DISABLE_PLUGINS"


def _describe(plugin: object, name: str) -> str:
    """A plugin as people know it: its registered name, else its class or module."""
    if name and not name.isdigit():  # pluggy names unnamed plugins by id()
        return repr(name)
    if inspect.ismodule(plugin):
        return f"module {plugin.__name__!r}"
    kind = type(plugin)
    return f"{kind.__module__}.{kind.__qualname__}"


class PluginRelay:
    """Typed calls into one engine's plugin manager."""

    def __init__(self, plugins: Iterable[object] = (), *, load_entry_points: bool = True) -> None:
        pm = pluggy.PluginManager(hooks.PROJECT)
        pm.add_hookspecs(hooks)
        self.pm = pm
        # Defaults first and trylast, so every user plugin is asked before them.
        pm.register(BuiltinRetryPolicy(), name="streamline.builtin.retry")
        pm.register(BuiltinPollPolicy(), name="streamline.builtin.poll")
        pm.register(CronCalculator(), name="streamline.builtin.cron")
        pm.register(IntervalCalculator(), name="streamline.builtin.interval")
        blocked = [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
        for name in blocked:
            pm.set_blocked(name)
        self._internal: set[int] = set()  # ids of the engine's own observers (its event bus)
        self.observers = 0
        """How many ``streamline_event`` implementations besides the engine's own bus."""
        self.middleware = False
        """Whether any step-middleware hook is implemented (the hot path skips them otherwise)."""
        if load_entry_points:
            try:
                pm.load_setuptools_entrypoints(hooks.PROJECT)
            except (pluggy.PluginValidationError, ValueError) as exc:
                raise ValidationError(f"invalid entry-point plugin: {exc}") from None
            except Exception as exc:
                raise ValidationError(
                    f"an entry-point plugin (group {hooks.PROJECT!r}) failed to load: {exc!r}; "
                    f"block it with {DISABLE_ENV}=<name>"
                ) from None
            self._refresh()
        for plugin in plugins:
            self.register(plugin)
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise ValidationError(f"invalid plugin: {exc}") from None
        self._check_sync_policies()

    def register(self, plugin: object, name: str | None = None, *, observer: bool = True) -> None:
        """Register ``plugin`` (refusing async implementations of firstresult hooks)."""
        try:
            self.pm.register(plugin, name=name)
        except ValueError as exc:
            raise ValidationError(f"cannot register plugin {plugin!r}: {exc}") from None
        except pluggy.PluginValidationError as exc:
            raise ValidationError(f"invalid plugin {plugin!r}: {exc}") from None
        self._check_sync_policies()
        self._refresh(skip=None if observer else plugin)

    def _refresh(self, skip: object | None = None) -> None:
        if skip is not None:
            self._internal.add(id(skip))
        impls = self.pm.hook.streamline_event.get_hookimpls()
        self.observers = sum(1 for i in impls if id(i.plugin) not in self._internal)
        self.middleware = any(
            self.has_impls(h)
            for h in ("streamline_before_step", "streamline_after_step", "streamline_step_error")
        )

    def _check_sync_policies(self) -> None:
        for hook_name in hooks.FIRSTRESULT_HOOKS:
            caller = getattr(self.pm.hook, hook_name)
            for impl in caller.get_hookimpls():
                if inspect.iscoroutinefunction(impl.function):
                    self.pm.unregister(impl.plugin)
                    raise ValidationError(
                        f"plugin {_describe(impl.plugin, impl.plugin_name)} implements "
                        f"{hook_name} as async; "
                        f"{hook_name} is a firstresult policy hook and must be a plain def"
                    )

    def has_impls(self, hook_name: str) -> bool:
        """Whether any plugin implements ``hook_name`` (lets the hot path skip calls)."""
        return bool(getattr(self.pm.hook, hook_name).get_hookimpls())

    async def _observe(self, hook_name: str, **kwargs: Any) -> list[BaseException]:
        """Call an observer hook; await async impls; collect (never raise) failures."""
        failures: list[BaseException] = []
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            try:
                args = {k: kwargs[k] for k in impl.argnames}
                result = impl.function(**args)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                log.exception("plugin %s failed in %s", impl.plugin_name, hook_name)
                failures.append(exc)
        return failures

    async def event(self, event: Event) -> list[BaseException]:
        """Deliver ``event`` to every ``streamline_event`` implementation."""
        return await self._observe("streamline_event", event=event)

    async def before_step(
        self, run: WorkflowRun, step: StepState, attempt: int
    ) -> list[BaseException]:
        """``streamline_before_step``."""
        return await self._observe("streamline_before_step", run=run, step=step, attempt=attempt)

    async def after_step(
        self, run: WorkflowRun, step: StepState, output: Any
    ) -> list[BaseException]:
        """``streamline_after_step``."""
        return await self._observe("streamline_after_step", run=run, step=step, output=output)

    async def step_error(
        self, run: WorkflowRun, step: StepState, error: BaseException
    ) -> list[BaseException]:
        """``streamline_step_error``."""
        return await self._observe("streamline_step_error", run=run, step=step, error=error)

    async def archive(self, runs: list[WorkflowRun]) -> list[BaseException]:
        """``streamline_archive``: failures are returned (the caller keeps the batch)."""
        return await self._observe("streamline_archive", runs=runs)

    def retry_delay(
        self,
        run: WorkflowRun,
        step: StepState,
        config: StepSpec,
        attempt: int,
        error: BaseException,
    ) -> float | None:
        """Seconds until the next attempt, or ``None`` to give up now."""
        try:
            answer = self.pm.hook.streamline_retry_delay(
                run=run, step=step, config=config, attempt=attempt, error=error
            )
            if answer is hooks.GIVE_UP or answer is None:
                return None
            return max(0.0, float(answer))
        except Exception:
            # A broken policy must not strand the run: fall back to the built-in backoff.
            log.exception("streamline_retry_delay failed; using the built-in backoff")
            return BuiltinRetryPolicy().streamline_retry_delay(run, step, config, attempt, error)

    def poll_delay(self, stats: dict[str, Any]) -> float:
        """Seconds to wait before the next poll."""
        try:
            answer = self.pm.hook.streamline_poll_delay(stats=stats)
            return float(stats["max_poll_interval"]) if answer is None else max(0.0, float(answer))
        except Exception:
            log.exception("streamline_poll_delay failed; polling at the ceiling")
            return float(stats["max_poll_interval"])

    def next_occurrence(self, schedule: Any, after: datetime) -> datetime | None:
        """Next firing of ``schedule`` strictly after ``after``, if some plugin knows the shape.

        An answer that is not an aware datetime later than ``after`` is treated
        as no answer, so a buggy calculator can never make a schedule spin.
        """
        result = self.pm.hook.streamline_next_occurrence(schedule=schedule, after=after)
        if not isinstance(result, datetime) or result.tzinfo is None or result <= after:
            return None
        return result.astimezone(UTC)
