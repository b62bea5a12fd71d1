"""``Workflow``: a registered definition and the operations on its runs."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

import pydantic

from streamline_core._json import Unstorable, to_json_value
from streamline_core.definition import Handler, StepConfig, StepDefaults, StepSpec, resolve_step
from streamline_core.errors import ValidationError
from streamline_core.run import WorkflowRun

if TYPE_CHECKING:
    from streamline_core.engine import Engine

__all__ = ["Workflow"]


class Workflow:
    """A workflow definition registered on an engine; its methods act on its runs only.

    Create with ``engine.workflow(...)`` (or ``create_workflow``). Steps are
    given as a dict, or added in order with the :meth:`step` decorator.
    """

    def __init__(
        self,
        engine: Engine,
        name: str,
        steps: Mapping[str, Any] | None = None,
        *,
        context: Callable[[Any], Any] | Mapping[str, Any] | None = None,
        version: str = "1",
        defaults: StepDefaults | None = None,
        input_model: type[Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ValidationError(f"workflow name must be a non-empty string, got {name!r}")
        if not isinstance(version, str) or not version:
            raise ValidationError(f"workflow version must be a non-empty string, got {version!r}")
        if defaults is not None and not isinstance(defaults, StepDefaults):
            raise ValidationError("defaults must be a StepDefaults")
        if context is not None and not callable(context) and not isinstance(context, Mapping):
            raise ValidationError("context must be a callable(input) -> dict, or a dict")
        if input_model is not None and not (
            isinstance(input_model, type) and issubclass(input_model, pydantic.BaseModel)
        ):
            raise ValidationError("input_model must be a pydantic model class")
        if steps is not None and not isinstance(steps, Mapping):
            raise ValidationError("steps must be a mapping of step id to handler")
        self.engine = engine
        self.name = name
        self.version = version
        self.defaults = defaults
        self.input_model = input_model
        self._context = context
        self.steps: list[StepSpec] = []
        for step_id, value in (steps or {}).items():
            self._add(resolve_step(step_id, value, defaults))
        if steps is not None and not self.steps:
            raise ValidationError(f"workflow {name!r} has no steps")

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r} v{self.version} steps={[s.step_id for s in self.steps]}>"

    def _add(self, spec: StepSpec) -> None:
        if any(s.step_id == spec.step_id for s in self.steps):
            raise ValidationError(f"workflow {self.name!r}: duplicate step id {spec.step_id!r}")
        self.steps.append(spec)

    def same_definition(self, other: Workflow) -> bool:
        """Same step ids in order, same handlers and options, same context and model."""
        return (
            self.name == other.name
            and self.version == other.version
            and len(self.steps) == len(other.steps)
            and all(a.same_as(b) for a, b in zip(self.steps, other.steps, strict=True))
            and self._context is other._context
            and self.input_model is other.input_model
        )

    @property
    def step_ids(self) -> list[str]:
        """Step ids in execution order."""
        return [s.step_id for s in self.steps]

    # --- decorator form ------------------------------------------------------------------

    @overload
    def step(self, handler: Handler, /) -> Handler: ...

    @overload
    def step(
        self,
        handler: None = None,
        /,
        *,
        name: str | None = None,
        retries: int | None = None,
        timeout: float | timedelta | None = None,
        retry_delay: float | timedelta | None = None,
        retry_backoff: Any = None,
        skip_if: Callable[[Any], Any] | None = None,
    ) -> Callable[[Handler], Handler]: ...

    def step(
        self,
        handler: Handler | None = None,
        /,
        *,
        name: str | None = None,
        retries: int | None = None,
        timeout: float | timedelta | None = None,
        retry_delay: float | timedelta | None = None,
        retry_backoff: Any = None,
        skip_if: Callable[[Any], Any] | None = None,
    ) -> Handler | Callable[[Handler], Handler]:
        """Add a step (in declaration order): ``@wf.step`` or ``@wf.step(retries=5, ...)``.

        The step id is ``name`` or the function's name.
        """

        def register(fn: Handler) -> Handler:
            step_id = name or getattr(fn, "__name__", None)
            config = StepConfig(
                handler=fn,
                retries=retries,
                timeout=timeout,
                retry_delay=retry_delay,
                retry_backoff=retry_backoff,
                skip_if=skip_if,
            )
            self._add(resolve_step(step_id, config, self.defaults))
            return fn

        if handler is not None:
            return register(handler)
        return register

    # --- inputs and context --------------------------------------------------------------

    def _validate_input(self, value: Any) -> Any:
        if not self.steps:
            raise ValidationError(f"workflow {self.name!r} has no steps")
        if self.input_model is not None:
            try:
                model = (
                    value
                    if isinstance(value, self.input_model)
                    else self.input_model.model_validate(value)
                )
            except pydantic.ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                    for e in exc.errors()
                )
                raise ValidationError(
                    f"input for workflow {self.name!r} is invalid: {problems}"
                ) from None
            return model.model_dump(mode="json")
        try:
            return to_json_value(value, "input")
        except Unstorable as exc:
            raise ValidationError(
                f"input for workflow {self.name!r} is not JSON-compatible: {exc.type_name} at "
                f"{exc.path}"
            ) from None

    def _input_for(self, stored: Any) -> Any:
        if self.input_model is not None:
            try:
                return self.input_model.model_validate(stored)
            except pydantic.ValidationError:
                return stored
        return stored

    async def _build_context(self, stored_input: Any) -> dict[str, Any]:
        ctx = self._context
        if ctx is None:
            return {}
        if isinstance(ctx, Mapping):
            value: Any = dict(ctx)
        else:
            try:
                value = ctx(self._input_for(stored_input))
                if inspect.isawaitable(value):
                    value = await value
            except Exception as exc:
                raise ValidationError(
                    f"workflow {self.name!r}: the context factory failed: {exc!r}"
                ) from exc
        if not isinstance(value, Mapping):
            raise ValidationError(
                f"workflow {self.name!r}: the context factory must return a dict, got "
                f"{type(value).__name__}"
            )
        try:
            out: dict[str, Any] = to_json_value(dict(value), "context")
        except Unstorable as exc:
            raise ValidationError(
                f"workflow {self.name!r}: context is not JSON-compatible: {exc.type_name} at "
                f"{exc.path}"
            ) from None
        for key in out:
            if not key or "." in key or key.startswith("$"):
                raise ValidationError(f"context key {key!r} may not contain '.' or start with '$'")
        return out

    # --- operations ------------------------------------------------------------------------

    async def start(
        self,
        input: Any = None,
        *,
        meta: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        priority: int = 0,
        tenant_id: str | None = None,
        start_at: datetime | None = None,
    ) -> WorkflowRun:
        """Start a run. Returns once it is stored (status ``running``).

        A started engine runs the first step at once on its own task; a client
        engine leaves the run for any worker. With ``idempotency_key``, an active
        run holding the key is returned instead of a new one.

        Raises:
            ValidationError: invalid input, meta or definition; nothing is stored.
        """
        return await self.engine._create_run(
            self,
            input,
            meta=meta,
            idempotency_key=idempotency_key,
            priority=priority,
            tenant_id=tenant_id,
            start_at=start_at,
        )

    async def execute(self, run_id: str) -> WorkflowRun:
        """Drive the run in this process until it suspends or ends; returns it as stored."""
        return await self.engine._execute(run_id, self.name)

    async def resume(self, run_id: str, payload: Any = None) -> WorkflowRun:
        """Complete the ``ctx.wait`` step of a waiting run with ``payload``.

        Raises:
            WorkflowNotFoundError: no such run of this workflow.
            InvalidStateError: the run is not waiting on ``ctx.wait``.
        """
        return await self.engine._resume(run_id, payload, self.name)

    async def get(self, run_id: str) -> WorkflowRun | None:
        """The run, or ``None`` (also for a run of another workflow)."""
        return await self.engine._get(run_id, self.name)

    async def cancel(self, run_id: str, reason: str | None = None) -> WorkflowRun:
        """Cancel an active run; a step executing in this process is cancelled at once.

        Raises:
            InvalidStateError: the run already ended.
        """
        return await self.engine._cancel(run_id, reason, self.name)

    async def pause(self, run_id: str) -> WorkflowRun:
        """Pause: the run is never claimed until :meth:`unpause` (a running step still commits)."""
        return await self.engine._set_paused(run_id, True, self.name)

    async def unpause(self, run_id: str) -> WorkflowRun:
        """Let a paused run be claimed again."""
        return await self.engine._set_paused(run_id, False, self.name)

    async def rewind_to(self, run_id: str, step_id: str) -> WorkflowRun:
        """Re-run from ``step_id``: it and every later step are reset; earlier outputs stay.

        Raises:
            StepNotFoundError: the run has no such step.
        """
        return await self.engine._rewind(run_id, step_id, self.name)

    async def wait_for(
        self,
        run_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        suspended: bool = False,
    ) -> WorkflowRun:
        """Wait until the run is ``done``, ``failed`` or ``cancelled`` and return it.

        ``timeout`` and ``poll_interval`` are real seconds; a run changed by an
        engine in this process is noticed at once.

        Args:
            run_id: The run.
            timeout: Give up after this many seconds.
            poll_interval: How often to re-read a run changed elsewhere.
            suspended: Also return when the run waits for a person or an event,
                or sleeps (not during retry backoff).

        Raises:
            TimeoutError: still active after ``timeout``.
        """
        return await self.engine._wait_for(
            run_id, self.name, timeout, poll_interval, suspended=suspended
        )

    async def shutdown(self) -> None:
        """Shut the engine down (see ``Engine.shutdown``)."""
        await self.engine.shutdown()
