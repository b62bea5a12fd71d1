"""``WorkflowSpec``: a workflow's definition — its name, version, steps, input and context.

Definition layer: imports the model modules and :mod:`definition`. It owns
what a run's input becomes: :meth:`WorkflowSpec.validate_input` turns the
caller's value into the stored input, :meth:`WorkflowSpec.input_for` turns it
back into what handlers see, and :meth:`WorkflowSpec.build_context` makes the
run's first context. The engine's parts receive specs; the ``Workflow``
façade wraps one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypedDict

import pydantic

from streamline_core._durations import seconds
from streamline_core._json import Unstorable, to_json_value
from streamline_core.debounce import Debounce
from streamline_core.definition import StepDefaults, StepSpec, resolve_step
from streamline_core.errors import ValidationError
from streamline_core.flow_control import Concurrency, RateLimit

__all__ = ["WorkflowOptions", "WorkflowSpec"]

JOIN_RECHECK = 30.0
"""Default seconds between a joining step's re-reads of its children."""

ContextFactory = Callable[[Any], Any] | Mapping[str, Any]


class WorkflowOptions(TypedDict, total=False):
    """The keyword options of ``engine.workflow(name, steps, **options)``.

    One typed place for them, so ``Engine.workflow`` forwards them unchanged
    to :class:`WorkflowSpec`, which checks each one.
    """

    context: ContextFactory | None
    """``context(input) -> dict`` (or a dict) building the run's initial context."""
    version: str
    """Definition version, stored on each run (default ``"1"``)."""
    defaults: StepDefaults | None
    """Options for every step (``StepDefaults``)."""
    input_model: type[Any] | None
    """A pydantic model that validates ``start`` input."""
    join_recheck: float | timedelta
    """Seconds between re-reads of the children a joining step waits on (default 30)."""
    max_gotos: int
    """How many ``ctx.goto`` jumps a run may make (default 1000); the next fails the run."""
    compensate_on_cancel: bool
    """Whether ``cancel`` runs the saga's ``compensate`` handlers first (default no)."""
    debounce: Debounce | None
    """Collapse bursts of starts into one run (:class:`~streamline_core.Debounce`)."""
    trigger: str | None
    """``emit_event(trigger, data)`` (a broadcast) starts a run with ``input=data``."""
    cancel_on: Mapping[str, str] | None
    """``{event: field}``: a broadcast whose ``data[field]`` equals ``context[field]`` cancels."""
    concurrency: Concurrency | None
    """At most ``limit`` runs per key hold a lease at once (``Concurrency``)."""
    rate_limit: RateLimit | None
    """At most ``limit`` runs per key begin per ``period`` (``RateLimit``)."""


class WorkflowSpec:
    """A validated workflow definition; steps may be added until it first runs.

    Args:
        name: Workflow id stored on every run.
        steps: ``{step_id: handler | StepConfig | dict}`` in order, or ``None``
            to add steps later with :meth:`add`.
        context: ``context(input) -> dict`` (or a dict) building the run's context.
        version: Definition version, stored on each run.
        defaults: Options for every step.
        input_model: A pydantic model that validates ``start`` input.
        join_recheck: A step joining child runs re-reads them at least this
            often (seconds), so a lost notification delays it, never strands it.
        max_gotos: How many ``ctx.goto`` jumps a run may make; the next fails it.
        compensate_on_cancel: ``cancel`` compensates the done steps first.
        debounce: Collapse bursts of starts (see :mod:`streamline_core._runtime.debouncing`).
        trigger: An event name whose broadcasts start runs (``input=data``).
        cancel_on: ``{event name: field}``; see :mod:`streamline_core._runtime.triggers`.
        concurrency: Per-key slots (``Concurrency``), enforced by the store's claim.
        rate_limit: Per-key begins per window (``RateLimit``), enforced likewise.

    Raises:
        ValidationError: The definition is invalid.
    """

    def __init__(
        self,
        name: str,
        steps: Mapping[str, Any] | None = None,
        *,
        context: ContextFactory | None = None,
        version: str = "1",
        defaults: StepDefaults | None = None,
        input_model: type[Any] | None = None,
        join_recheck: float | timedelta = JOIN_RECHECK,
        max_gotos: int = 1000,
        compensate_on_cancel: bool = False,
        debounce: Debounce | None = None,
        trigger: str | None = None,
        cancel_on: Mapping[str, str] | None = None,
        concurrency: Concurrency | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        if concurrency is not None and not isinstance(concurrency, Concurrency):
            raise ValidationError(f"concurrency must be a Concurrency, got {concurrency!r}")
        if rate_limit is not None and not isinstance(rate_limit, RateLimit):
            raise ValidationError(f"rate_limit must be a RateLimit, got {rate_limit!r}")
        self.concurrency = concurrency
        self.rate_limit = rate_limit
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
        if isinstance(max_gotos, bool) or not isinstance(max_gotos, int) or max_gotos < 0:
            raise ValidationError(f"max_gotos must be an integer >= 0, got {max_gotos!r}")
        if not isinstance(compensate_on_cancel, bool):
            raise ValidationError("compensate_on_cancel must be a bool")
        if steps is not None and not isinstance(steps, Mapping):
            raise ValidationError("steps must be a mapping of step id to handler")
        recheck = seconds(join_recheck, "join_recheck")
        if recheck is None or recheck <= 0:
            raise ValidationError("join_recheck must be a positive duration")
        self.join_recheck = recheck
        self.name = name
        self.version = version
        self.defaults = defaults
        self.input_model = input_model
        self.context = context
        self.max_gotos = max_gotos
        self.compensate_on_cancel = compensate_on_cancel
        self.debounce, self.trigger, self.cancel_on = _event_options(debounce, trigger, cancel_on)
        self.steps: list[StepSpec] = []
        for step_id, value in (steps or {}).items():
            self.add(resolve_step(step_id, value, defaults))
        if steps is not None and not self.steps:
            raise ValidationError(f"workflow {name!r} has no steps")

    def __repr__(self) -> str:
        return f"<WorkflowSpec {self.name!r} v{self.version} steps={self.step_ids}>"

    def add(self, spec: StepSpec) -> None:
        """Append a resolved step (its id must be new)."""
        if any(s.step_id == spec.step_id for s in self.steps):
            raise ValidationError(f"workflow {self.name!r}: duplicate step id {spec.step_id!r}")
        self.steps.append(spec)

    def same_as(self, other: WorkflowSpec) -> bool:
        """Same step ids in order, same handlers and options, same context and model."""
        return (
            self.name == other.name
            and self.version == other.version
            and len(self.steps) == len(other.steps)
            and all(a.same_as(b) for a, b in zip(self.steps, other.steps, strict=True))
            and self.context is other.context
            and self.input_model is other.input_model
            and self.max_gotos == other.max_gotos
            and self.compensate_on_cancel == other.compensate_on_cancel
            and self.debounce == other.debounce
            and (self.trigger, self.cancel_on) == (other.trigger, other.cancel_on)
            and self.concurrency == other.concurrency
            and self.rate_limit == other.rate_limit
        )

    @property
    def limited(self) -> bool:
        """Whether runs of this workflow are flow-controlled (concurrency or rate limit)."""
        return self.concurrency is not None or self.rate_limit is not None

    @property
    def step_ids(self) -> list[str]:
        """Step ids in execution order."""
        return [s.step_id for s in self.steps]

    # --- what a run's input becomes ----------------------------------------------------

    def validate_input(self, value: Any) -> Any:
        """The stored (JSON) form of ``value``, validated by ``input_model`` when there is one.

        Raises:
            ValidationError: the workflow has no steps, or the input is invalid
                or not JSON-compatible.
        """
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

    def input_for(self, stored: Any) -> Any:
        """What handlers see as ``ctx.input``: an ``input_model`` instance when there is one."""
        if self.input_model is not None:
            try:
                return self.input_model.model_validate(stored)
            except pydantic.ValidationError:
                return stored
        return stored

    async def build_context(self, stored_input: Any) -> dict[str, Any]:
        """The run's first context, from the context factory (or dict) and the stored input.

        Raises:
            ValidationError: the factory failed, or returned something that is
                not a dict of JSON values with plain keys.
        """
        factory = self.context
        if factory is None:
            return {}
        if isinstance(factory, Mapping):
            value: Any = dict(factory)
        else:
            try:
                value = factory(self.input_for(stored_input))
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


def _event_options(
    debounce: Any, trigger: Any, cancel_on: Any
) -> tuple[Debounce | None, str | None, dict[str, str] | None]:
    """``debounce``, ``trigger`` and ``cancel_on`` checked (``cancel_on`` copied)."""
    if debounce is not None and not isinstance(debounce, Debounce):
        raise ValidationError(f"debounce must be a Debounce, got {debounce!r}")
    if trigger is not None and (not isinstance(trigger, str) or not trigger):
        raise ValidationError(f"trigger must be a non-empty event name (str), got {trigger!r}")
    if cancel_on is None:
        return debounce, trigger, None
    if not isinstance(cancel_on, Mapping) or not cancel_on:
        raise ValidationError(
            f"cancel_on must be a non-empty mapping of event name to context field, got "
            f"{cancel_on!r}"
        )
    for event, field in cancel_on.items():
        if not isinstance(event, str) or not event or not isinstance(field, str) or not field:
            raise ValidationError(
                f"cancel_on maps event names to context field names (non-empty str), got "
                f"{event!r}: {field!r}"
            )
        if "." in field or field.startswith("$"):
            raise ValidationError(
                f"cancel_on field {field!r} may not contain '.' or start with '$'"
            )
    return debounce, trigger, dict(cancel_on)
