"""``Workflow``: the façade over one registered workflow and the operations on its runs.

Façade layer: imports the workflow spec and the runtime's client. It checks
arguments and delegates: the spec owns the definition and what input
becomes, the client's parts own the runs. It never sees the ``Engine``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, overload

import streamline_core._arguments as A
from streamline_core._durations import seconds
from streamline_core._runtime.client import Client
from streamline_core.definition import (
    Handler,
    Retry,
    StepConfig,
    StepDefaults,
    StepSpec,
    resolve_step,
)
from streamline_core.errors import ValidationError
from streamline_core.run import WorkflowRun
from streamline_core.workflow_spec import WorkflowSpec

__all__ = ["Workflow"]


class Workflow:
    """A workflow definition registered on an engine; its methods act on its runs only.

    Create with ``engine.workflow(...)`` (or ``create_workflow``). Steps are
    given as a dict, or added in order with the :meth:`step` decorator.
    """

    def __init__(self, spec: WorkflowSpec, client: Client) -> None:
        self.spec = spec
        self._client = client

    def __repr__(self) -> str:
        return f"<Workflow {self.name!r} v{self.version} steps={self.step_ids}>"

    @property
    def name(self) -> str:
        """The workflow's name (``run.workflow_id``)."""
        return self.spec.name

    @property
    def version(self) -> str:
        """The definition version stored on each run."""
        return self.spec.version

    @property
    def steps(self) -> list[StepSpec]:
        """The resolved steps, in order."""
        return self.spec.steps

    @property
    def step_ids(self) -> list[str]:
        """Step ids in execution order."""
        return self.spec.step_ids

    @property
    def defaults(self) -> StepDefaults | None:
        """Options applied to every step."""
        return self.spec.defaults

    @property
    def input_model(self) -> type[Any] | None:
        """The pydantic model validating ``start`` input, if any."""
        return self.spec.input_model

    def same_definition(self, other: Workflow) -> bool:
        """Same step ids in order, same handlers and options, same context and model."""
        return self.spec.same_as(other.spec)

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
        retry: Retry | None = None,
        compensate: Handler | None = None,
        compensate_retries: int | None = None,
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
        retry: Retry | None = None,
        compensate: Handler | None = None,
        compensate_retries: int | None = None,
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
                retry=retry,
                compensate=compensate,
                compensate_retries=compensate_retries,
            )
            self.spec.add(resolve_step(step_id, config, self.spec.defaults))
            return fn

        if handler is not None:
            return register(handler)
        return register

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
        client = self._client
        await client.autostart()
        scoped = client.rt.tenant_id
        A.optional_text(tenant_id, "tenant_id")
        if tenant_id is not None and scoped is not None and tenant_id != scoped:
            raise ValidationError(
                f"this engine is scoped to tenant {scoped!r}; cannot start a run "
                f"for tenant {tenant_id!r}"
            )
        A.integer(priority, "priority")
        A.optional_text(idempotency_key, "idempotency_key")
        A.optional_aware_datetime(start_at, "start_at")
        A.mapping(meta, "meta")
        return await client.creation.create(
            self.spec,
            input,
            meta=meta,
            idempotency_key=idempotency_key,
            priority=priority,
            tenant_id=scoped if scoped is not None else tenant_id,
            start_at=start_at,
        )

    async def fork(
        self, run_id: str, from_step: str, *, step_map: Mapping[str, str] | None = None
    ) -> WorkflowRun:
        """Start a NEW run of this workflow and version from ``from_step``, seeded by ``run_id``.

        The source run (of this workflow, any version; left untouched) gives
        its input, context and the outputs of the steps before ``from_step``,
        matched by step id or through ``step_map`` (old step id -> step id
        here); a step before ``from_step`` with no done counterpart is recorded
        ``skipped``. ``meta`` is the source's plus ``meta["forked_from"] = run_id``.
        The new run is ``running`` at ``from_step``: a started engine runs it
        at once, as after :meth:`start`.

        Raises:
            StepNotFoundError: this version has no step ``from_step``.
            WorkflowNotFoundError: no such run of this workflow.
            ValidationError: a bad ``step_map``, or input this version refuses.
        """
        await self._client.autostart()
        return await self._client.migration.fork(self.spec, run_id, from_step, step_map)

    async def execute(self, run_id: str) -> WorkflowRun:
        """Drive the run in this process until it suspends or ends; returns it as stored."""
        return await self._client.dispatcher.execute(A.run_id(run_id), self.name)

    async def resume(self, run_id: str, payload: Any = None) -> WorkflowRun:
        """Complete the ``ctx.wait`` step of a waiting run with ``payload``.

        Raises:
            WorkflowNotFoundError: no such run of this workflow.
            InvalidStateError: the run is not waiting on ``ctx.wait``.
        """
        return await self._client.control.resume(A.run_id(run_id), payload, self.name)

    async def get(self, run_id: str) -> WorkflowRun | None:
        """The run, or ``None`` (also for a run of another workflow)."""
        return await self._client.reads.get(A.run_id(run_id), self.name)

    async def cancel(self, run_id: str, reason: str | None = None) -> WorkflowRun:
        """Cancel an active run; a step executing in this process is cancelled at once.

        Raises:
            InvalidStateError: the run already ended.
        """
        return await self._client.control.cancel(
            A.run_id(run_id),
            A.reason(reason),
            self.name,
        )

    async def pause(self, run_id: str) -> WorkflowRun:
        """Pause: the run is never claimed until :meth:`unpause` (a running step still commits)."""
        return await self._client.control.set_paused(A.run_id(run_id), True, self.name)

    async def unpause(self, run_id: str) -> WorkflowRun:
        """Let a paused run be claimed again."""
        return await self._client.control.set_paused(A.run_id(run_id), False, self.name)

    async def rewind_to(self, run_id: str, step_id: str) -> WorkflowRun:
        """Re-run from ``step_id``: it and every later step are reset; earlier outputs stay.

        Raises:
            StepNotFoundError: the run has no such step.
        """
        return await self._client.control.rewind(
            A.run_id(run_id), A.text(step_id, "step_id"), self.name
        )

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
        timeout_s = seconds(timeout, "timeout")
        poll_s = seconds(poll_interval, "poll_interval")
        if poll_s is None or poll_s <= 0:
            raise ValidationError(f"poll_interval must be positive, got {poll_interval!r}")
        return await self._client.reads.wait_for(
            A.run_id(run_id), self.name, timeout_s, poll_s, suspended=suspended
        )

    async def shutdown(self) -> None:
        """Shut the engine down (see ``Engine.shutdown``)."""
        await self._client.shutdown()
