"""Step definitions: a step's options, and the validation that guards them.

Definition layer: imports the model modules (and the step context, for the
handler's type).

A step value given by the user is a handler, a :class:`StepConfig`, or a dict
with ``StepConfig``'s keys. Options left unset inherit the workflow's
:class:`StepDefaults`, then the library defaults (the original library's: 3
attempts, 1 s exponential backoff capped at 60 s with ±30 % jitter, no timeout).
Every problem raises ``ValidationError`` before any run exists.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from streamline_core._durations import seconds
from streamline_core.errors import ValidationError

if TYPE_CHECKING:
    from streamline_core.context import StepContext

__all__ = [
    "Handler",
    "Backoff",
    "Retry",
    "StepConfig",
    "StepDefaults",
    "StepSpec",
    "MAX_STEP_ID_LENGTH",
    "seconds",
    "resolve_step",
    "is_async_callable",
]

Handler: TypeAlias = Callable[["StepContext"], Any]
Backoff: TypeAlias = Literal["exponential", "linear", "fixed"] | float
MAX_STEP_ID_LENGTH = 100
_BACKOFFS = ("exponential", "linear", "fixed")


@dataclass(frozen=True)
class Retry:
    """A step's retry policy as a value: the declarative alternative to a retry plugin.

    Give it as ``StepConfig(handler, retry=Retry(...))``, ``@wf.step(retry=...)``
    or ``StepDefaults(retry=...)``. Unset fields inherit, as the other step
    options do. A plugin's ``streamline_retry_delay`` still decides first;
    this sets what the built-in backoff does.

    Attributes:
        attempts: Attempts including the first (1..20); default 3.
        delay: Base delay before a retry, seconds or ``timedelta``; default 1.
        backoff: ``"exponential"`` (default), ``"linear"``, ``"fixed"`` or a multiplier.
        max_delay: The longest single delay, seconds or ``timedelta``; default 60.
        jitter: Each delay is moved by up to ± this fraction (0..1); default 0.3.
        non_retryable: Exception types that fail the step at once, as
            ``NonRetriableError`` does (``STEP_FAILED``).
    """

    attempts: int | None = None
    delay: float | timedelta | None = None
    backoff: Backoff | None = None
    max_delay: float | timedelta | None = None
    jitter: float | None = None
    non_retryable: tuple[type[BaseException], ...] = ()


@dataclass(frozen=True)
class StepDefaults:
    """Options applied to every step of a workflow unless the step sets its own.

    Attributes:
        retries: Attempts including the first (1..20).
        timeout: Seconds (or timedelta) an attempt may run; ``None`` = no limit.
        retry_delay: Base delay in seconds before a retry.
        retry_backoff: ``"exponential"``, ``"linear"``, ``"fixed"`` or a float multiplier.
        retry: A :class:`Retry` for every step (its fields fill what the others leave unset).
        compensate_retries: Attempts of each ``compensate`` handler (1..20).
    """

    retries: int | None = None
    timeout: float | timedelta | None = None
    retry_delay: float | timedelta | None = None
    retry_backoff: Backoff | None = None
    retry: Retry | None = None
    compensate_retries: int | None = None


@dataclass(frozen=True)
class StepConfig:
    """A step handler with its options (unset options inherit the defaults).

    Attributes:
        handler: ``async def handler(ctx) -> output`` (a plain ``def`` runs in a thread).
        retries: Attempts including the first (1..20); default 3.
        timeout: Seconds (or timedelta) per attempt; default none.
        retry_delay: Base retry delay in seconds; default 1.
        retry_backoff: Backoff shape; default ``"exponential"``.
        skip_if: ``skip_if(ctx) -> bool``; when true the step is recorded as
            ``skipped`` (output ``None``) without running.
        compensate: ``compensate(ctx)`` undoes a ``done`` step when its run
            fails (the saga pattern; the original library's ``onCompensate``).
        compensate_retries: Attempts of ``compensate`` (1..20); default 3.
    """

    handler: Handler
    retries: int | None = None
    timeout: float | timedelta | None = None
    retry_delay: float | timedelta | None = None
    retry_backoff: Backoff | None = None
    skip_if: Callable[[StepContext], Any] | None = None
    retry: Retry | None = None
    compensate: Handler | None = None
    compensate_retries: int | None = None


@dataclass(frozen=True)
class StepSpec:
    """A step's resolved options, as the engine runs it (and as retry plugins see it)."""

    step_id: str
    handler: Handler = field(compare=False)
    retries: int = 3
    timeout: float | None = None
    retry_delay: float = 1.0
    retry_backoff: Backoff = "exponential"
    skip_if: Callable[[StepContext], Any] | None = field(default=None, compare=False)
    is_async: bool = True
    max_retry_delay: float = 60.0
    retry_jitter: float = 0.3
    non_retryable: tuple[type[BaseException], ...] = ()
    compensate: Handler | None = field(default=None, compare=False)
    compensate_retries: int = 3

    def same_as(self, other: StepSpec) -> bool:
        """Equal options and the very same callables."""
        return (
            self == other
            and self.handler is other.handler
            and self.skip_if is other.skip_if
            and self.compensate is other.compensate
        )


_CONFIG_KEYS = {f.name for f in fields(StepConfig)}


def _validate_step_id(step_id: Any) -> str:
    if not isinstance(step_id, str) or not step_id.strip():
        raise ValidationError(f"step id must be a non-empty string, got {step_id!r}")
    if len(step_id) > MAX_STEP_ID_LENGTH:
        raise ValidationError(
            f"step id {step_id[:20]!r}... is {len(step_id)} characters; "
            f"the limit is {MAX_STEP_ID_LENGTH}"
        )
    return step_id


def resolve_step(step_id: Any, value: Any, defaults: StepDefaults | None) -> StepSpec:
    """Validate one user step value and resolve its options against ``defaults``."""
    step_id = _validate_step_id(step_id)
    if isinstance(value, Mapping):
        unknown = set(value) - _CONFIG_KEYS
        if unknown:
            raise ValidationError(
                f"step {step_id!r}: unknown option(s) {sorted(unknown)}; "
                f"expected some of {sorted(_CONFIG_KEYS)}"
            )
        if "handler" not in value:
            raise ValidationError(f"step {step_id!r}: a step dict needs a 'handler'")
        value = StepConfig(**value)
    if not isinstance(value, StepConfig):
        value = StepConfig(handler=value)
    if not callable(value.handler):
        raise ValidationError(
            f"step {step_id!r}: handler must be callable, got {type(value.handler).__name__}"
        )
    if value.skip_if is not None and not callable(value.skip_if):
        raise ValidationError(f"step {step_id!r}: skip_if must be callable")
    if value.compensate is not None and not callable(value.compensate):
        raise ValidationError(f"step {step_id!r}: compensate must be callable")
    d = defaults or StepDefaults()
    for where, holder in ((f"step {step_id!r}", value), ("defaults", d)):
        _check_retry(where, holder)
    own_retry = value.retry or Retry()
    inherited_retry = d.retry or Retry()

    def pick(name: str, fallback: Any, retry_name: str | None = None) -> Any:
        candidates = [getattr(value, name)]
        if retry_name:
            candidates.append(getattr(own_retry, retry_name))
        candidates.append(getattr(d, name))
        if retry_name:
            candidates.append(getattr(inherited_retry, retry_name))
        return next((c for c in candidates if c is not None), fallback)

    retries = pick("retries", 3, "attempts")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 1 <= retries <= 20:
        raise ValidationError(
            f"step {step_id!r}: retries must be an integer from 1 to 20, got {retries!r}"
        )
    timeout = seconds(pick("timeout", None), f"step {step_id!r}: timeout")
    if timeout is not None and timeout <= 0:
        raise ValidationError(f"step {step_id!r}: timeout must be positive, got {timeout!r}")
    retry_delay = seconds(pick("retry_delay", 1.0, "delay"), f"step {step_id!r}: retry_delay")
    assert retry_delay is not None
    if retry_delay < 0:
        raise ValidationError(f"step {step_id!r}: retry_delay must be >= 0, got {retry_delay!r}")
    backoff = pick("retry_backoff", "exponential", "backoff")
    if isinstance(backoff, bool) or not (
        backoff in _BACKOFFS or (isinstance(backoff, (int, float)) and backoff > 0)
    ):
        raise ValidationError(
            f"step {step_id!r}: retry_backoff must be one of {_BACKOFFS} or a positive "
            f"multiplier, got {backoff!r}"
        )
    max_delay = seconds(
        own_retry.max_delay if own_retry.max_delay is not None else inherited_retry.max_delay,
        f"step {step_id!r}: max_delay",
    )
    if max_delay is not None and max_delay < 0:
        raise ValidationError(f"step {step_id!r}: max_delay must be >= 0, got {max_delay!r}")
    jitter = own_retry.jitter if own_retry.jitter is not None else inherited_retry.jitter
    if jitter is not None and (
        isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter <= 1
    ):
        raise ValidationError(f"step {step_id!r}: jitter must be a fraction from 0 to 1")
    compensate_retries = pick("compensate_retries", 3)
    if (
        isinstance(compensate_retries, bool)
        or not isinstance(compensate_retries, int)
        or not 1 <= compensate_retries <= 20
    ):
        raise ValidationError(
            f"step {step_id!r}: compensate_retries must be an integer from 1 to 20, "
            f"got {compensate_retries!r}"
        )
    handler = value.handler
    is_async = is_async_callable(handler)
    return StepSpec(
        step_id=step_id,
        handler=handler,
        retries=retries,
        timeout=timeout,
        retry_delay=retry_delay,
        retry_backoff=cast(Backoff, backoff if isinstance(backoff, str) else float(backoff)),
        skip_if=value.skip_if,
        is_async=is_async,
        max_retry_delay=60.0 if max_delay is None else max_delay,
        retry_jitter=0.3 if jitter is None else float(jitter),
        non_retryable=own_retry.non_retryable or inherited_retry.non_retryable,
        compensate=value.compensate,
        compensate_retries=compensate_retries,
    )


def is_async_callable(fn: Any) -> bool:
    """Whether calling ``fn`` returns a coroutine (an ``async def``, or an object with one)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )


def _check_retry(where: str, holder: StepConfig | StepDefaults) -> None:
    retry = holder.retry
    if retry is None:
        return
    if not isinstance(retry, Retry):
        raise ValidationError(f"{where}: retry must be a Retry, got {type(retry).__name__}")
    mixed = [
        n for n in ("retries", "retry_delay", "retry_backoff") if getattr(holder, n) is not None
    ]
    if mixed:
        raise ValidationError(f"{where}: give retry=Retry(...) or {', '.join(mixed)}, not both")
    bad = [
        t for t in retry.non_retryable if not (isinstance(t, type) and issubclass(t, BaseException))
    ]
    if not isinstance(retry.non_retryable, tuple) or bad:
        raise ValidationError(f"{where}: Retry.non_retryable must be a tuple of exception types")
