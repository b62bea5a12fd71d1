"""``StepContext``: what a step handler receives.

Context layer: imports the model modules and :mod:`_hook_tokens` only. What
it needs of the engine while a step runs (the clock, events, a heartbeat) it
gets as :class:`StepServices` from the executor that builds it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, NoReturn, Protocol

from streamline_core._child_steps import ChildOps, ChildSteps
from streamline_core._durations import seconds
from streamline_core._hook_tokens import Hook, new_hook
from streamline_core._json import Unstorable, to_json_value
from streamline_core._step_progress import StepProgress
from streamline_core.clock import Clock
from streamline_core.errors import GotoSignal, StepNotFoundError, SuspendSignal, ValidationError
from streamline_core.run import RunError, StepStatus, WaitState, WorkflowRun

__all__ = ["StepContext", "StepServices"]

log = logging.getLogger("streamline.run")


class StepServices(Protocol):
    """What a step context uses of the engine: one object per engine, shared by every step."""

    @property
    def clock(self) -> Clock:
        """The engine's clock."""
        ...

    async def emit(
        self, name: str, *, run_id: str, step_id: str, data: Any, workflow_id: str
    ) -> None:
        """Emit a custom event to ``engine.on`` handlers and plugins."""
        ...

    async def heartbeat(self, run_id: str) -> None:
        """Renew this worker's lease on ``run_id`` now."""
        ...

    @property
    def children(self) -> ChildOps:
        """Child runs: ``run_child``, ``run_children``, ``start_child``, ``join``."""
        ...

    async def write_checkpoint(self, run_id: str, step_id: str, changes: Mapping[str, Any]) -> None:
        """Write ``changes`` under the executing step's checkpoint, fenced by the lease."""
        ...


class StepContext(ChildSteps):
    """The handle a step handler gets: facts about the run, its context, and suspension.

    ``wait``, ``wait_for`` and ``sleep`` end the step (they never return): the
    run is suspended durably and, once resumed, the step's output is the resume
    payload (``wait``), the event data (``wait_for``) or ``None`` (``sleep``).
    Code after the call never runs. So do ``run_child``, ``run_children`` and
    ``join`` (see :class:`~streamline_core._child_steps.ChildSteps`).
    """

    def __init__(
        self,
        services: StepServices,
        run: WorkflowRun,
        step_id: str,
        attempt: int,
        input_value: Any,
        changes: dict[str, Any],
        *,
        compensating: bool = False,
    ) -> None:
        # ``changes`` belongs to the executor: the context keys this step set,
        # written with the step's commit.
        self._services = services
        self._run = run
        self._step_id = step_id
        self._attempt = attempt
        self._input = input_value
        self._context = dict(run.context)
        self._changes = changes
        self._hook_hash: str | None = None
        self._signal: asyncio.Event | None = None
        self._compensating = compensating
        self._progress: StepProgress | None = None

    @property
    def signal(self) -> asyncio.Event:
        """Set when the run is cancelled or this worker loses the lease: stop soon."""
        # Made on first use: most steps never look at it, and an Event per
        # step is measurable at thousands of steps a second.
        if self._signal is None:
            self._signal = asyncio.Event()
        return self._signal

    # --- read-only facts -----------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run.id

    @property
    def step_id(self) -> str:
        """The executing step's id."""
        return self._step_id

    @property
    def workflow_id(self) -> str:
        """The workflow's name."""
        return self._run.workflow_id

    @property
    def attempt(self) -> int:
        """This attempt's number, starting at 1."""
        return self._attempt

    @property
    def input(self) -> Any:
        """The run's input (an ``input_model`` instance when the workflow has one)."""
        return self._input

    @property
    def meta(self) -> Mapping[str, Any]:
        """Caller metadata given to ``start``."""
        return self._run.meta

    @property
    def tenant_id(self) -> str | None:
        """The run's tenant, if any."""
        return self._run.tenant_id

    @property
    def context(self) -> Mapping[str, Any]:
        """The run's context (read-only view; change it with :meth:`set`)."""
        return self._context

    @property
    def outputs(self) -> dict[str, Any]:
        """Outputs of the steps completed so far, by step id."""
        return {
            s.step_id: s.output
            for s in self._run.steps
            if s.status in (StepStatus.DONE, StepStatus.SKIPPED)
        }

    def get_output(self, step_id: str) -> Any:
        """Output of an earlier step (``None`` when it has none or did not run)."""
        step = self._run.step(step_id)
        return None if step is None else step.output

    # --- context ----------------------------------------------------------------

    def set(self, key: str, value: Any) -> None:
        """Set ``context[key]``; persisted atomically with this step's commit.

        Raises:
            ValidationError: ``key`` is not a plain name or ``value`` is not JSON-compatible.
        """
        if not isinstance(key, str) or not key or "." in key or key.startswith("$"):
            raise ValidationError(
                f"context key must be a non-empty string without '.' or a leading '$', got {key!r}",
                run_id=self.run_id,
                step_id=self.step_id,
            )
        try:
            stored = to_json_value(value, f"context[{key!r}]")
        except Unstorable as exc:
            raise ValidationError(
                f"step {self.step_id!r} set {exc.path} to a {exc.type_name}, which cannot be "
                "stored (JSON-compatible values only)",
                run_id=self.run_id,
                step_id=self.step_id,
            ) from None
        self._context[key] = stored
        self._changes[key] = stored

    def create_hook(self, reason: str | None = None) -> Hook:
        """A hook whose token resumes this step's next ``wait`` (``create_hook(ctx)``)."""
        hook = new_hook(self.run_id, self.step_id, reason)
        self._hook_hash = hook.token_hash
        return hook

    # --- suspension ----------------------------------------------------------------

    def _child_ops(self) -> ChildOps:
        return self._services.children

    def _until(self, timeout: float | timedelta | None, what: str) -> Any:
        secs = seconds(timeout, what)
        if secs is None:
            return None
        if secs < 0:
            raise ValidationError(f"{what} must not be negative", run_id=self.run_id)
        return self._services.clock.now() + timedelta(seconds=secs)

    async def wait(
        self,
        reason: str,
        data: Any = None,
        *,
        timeout: float | timedelta | None = None,
        hook: Hook | None = None,
    ) -> NoReturn:
        """Suspend for a person; ``resume(run_id, payload)`` completes this step with ``payload``.

        Args:
            reason: Why the run waits (shown in listings).
            data: JSON data for whoever resumes it.
            timeout: After this long the step completes with a
                ``WaitResolution(kind="timeout")`` output instead.
            hook: A hook from ``create_hook``; its token can resume this wait.
        """
        try:
            data = to_json_value(data, "wait data")
        except Unstorable as exc:
            raise ValidationError(f"ctx.wait data is not JSON-compatible: {exc}") from None
        hook_hash = hook.token_hash if hook is not None else self._hook_hash
        raise SuspendSignal(
            WaitState(
                kind="human",
                reason=reason,
                data=data,
                until=self._until(timeout, "wait timeout"),
                hook_token_hash=hook_hash,
            )
        )

    async def wait_for(self, event: str, *, timeout: float | timedelta | None = None) -> NoReturn:
        """Suspend until ``engine.emit_event(event, data)``; the step's output is ``data``."""
        if not isinstance(event, str) or not event:
            raise ValidationError("wait_for needs a non-empty event name", run_id=self.run_id)
        raise SuspendSignal(
            WaitState(kind="event", event=event, until=self._until(timeout, "wait_for timeout"))
        )

    async def sleep(self, duration: float | timedelta) -> NoReturn:
        """Durable timer: the run sleeps (no worker holds it); the step's output is ``None``."""
        until = self._until(duration, "sleep duration")
        if until is None:
            raise ValidationError("sleep needs a duration", run_id=self.run_id)
        raise SuspendSignal(WaitState(kind="timer", until=until))

    # --- in-step flow: checkpoints, map, goto --------------------------------------------

    @property
    def error(self) -> RunError | None:
        """The run's failure, in a ``compensate`` handler (``None`` in an ordinary step)."""
        return self._run.error

    def _flow(self, what: str) -> StepProgress:
        if self._compensating:
            raise ValidationError(
                f"step {self.step_id!r}: a compensate handler may not use ctx.{what}",
                run_id=self.run_id,
                step_id=self.step_id,
            )
        if self._progress is None:
            step = self._run.step(self._step_id)
            self._progress = StepProgress(
                self._services, self.run_id, self._step_id, step.checkpoint if step else None
            )
        return self._progress

    @property
    def last_checkpoint(self) -> Any:
        """What this step last saved with :meth:`checkpoint` (``None`` at first).

        Kept across attempts and recoveries; cleared when the step completes
        or is rewound.
        """
        if self._compensating:
            return None
        return self._flow("last_checkpoint").last_value

    async def checkpoint(self, value: Any) -> None:
        """Save ``value`` as this step's progress: one durable write, fenced by the lease.

        Raises:
            ValidationError: ``value`` is not JSON-compatible, or this step uses ``map``.
        """
        await self._flow("checkpoint").save(value)

    async def map(
        self, fn: Callable[[Any], Any], items: Iterable[Any], *, concurrency: int | None = None
    ) -> list[Any]:
        """``await fn(item)`` for every item, at most ``concurrency`` at once; results in order.

        Each finished item's result is written to the step's checkpoint as it
        completes (the results of one event-loop iteration share one write),
        so after a crash or a retry only the unfinished items run again. A
        failing item fails the step once the items in flight have settled.

        Raises:
            ValidationError: ``items`` is not iterable, an item or result is not
                JSON-compatible, ``concurrency`` is not a positive integer, or
                this step uses ``checkpoint``.
        """
        return await self._flow("map").map(fn, items, concurrency)

    async def goto(self, step_id: str) -> NoReturn:
        """End this step (``skipped``) and continue the run at ``step_id``.

        Jumping back resets ``step_id`` and every later step to ``pending``
        (outputs cleared, attempts 0; the context stays); jumping forward
        records the steps in between as ``skipped``. The workflow's
        ``max_gotos`` bounds the jumps of a run.

        Raises:
            StepNotFoundError: the workflow has no step ``step_id``.
        """
        if self._compensating:
            self._flow("goto")
        if not isinstance(step_id, str) or self._run.step(step_id) is None:
            raise StepNotFoundError(
                f"ctx.goto({step_id!r}): workflow {self.workflow_id!r} has no such step",
                run_id=self.run_id,
                step_id=self.step_id,
            )
        raise GotoSignal(step_id)

    # --- liveness, events, logs ------------------------------------------------------

    async def heartbeat(self) -> None:
        """Extend this worker's lease now (done automatically every lease/3)."""
        await self._services.heartbeat(self.run_id)

    async def emit(self, event: str, data: Any = None) -> None:
        """Emit a custom event to ``engine.on`` handlers and plugins."""
        await self._services.emit(
            event,
            run_id=self.run_id,
            step_id=self.step_id,
            data=data,
            workflow_id=self.workflow_id,
        )

    def log(self, message: str, **data: Any) -> None:
        """A structured log line tied to this run and step (logger ``streamline.run``)."""
        log.info(
            message,
            extra={
                "run_id": self.run_id,
                "step_id": self.step_id,
                "workflow_id": self.workflow_id,
                "attempt": self.attempt,
                "data": data,
            },
        )

    def idempotency_key(self, scope: str | None = None) -> str:
        """A key stable across retries and recovery of this step, for external side effects."""
        base = f"{self.run_id}:{self.step_id}"
        return base if scope is None else f"{base}:{scope}"

    def __repr__(self) -> str:
        return (
            f"StepContext(run_id={self.run_id!r}, step_id={self.step_id!r}, attempt={self.attempt})"
        )
