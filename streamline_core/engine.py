"""``Engine``: workflow registry, worker, client operations and events, over one Store.

An engine that is not started is a *client*: it creates, resumes, cancels and
queries runs in the store, and whichever started engine (a worker) claims a
run executes it. ``async with engine`` (or ``await engine.start()``) turns it
into a worker too: it claims due runs, runs the ones it starts at once on
local tasks, and heartbeats its leases.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from streamline_core import _patches as P
from streamline_core._json import Unstorable, to_json_value
from streamline_core._plugins import PluginRelay
from streamline_core._store_url import resolve_store_url, store_from_url
from streamline_core._tracking import IOTracker, TrackedStore
from streamline_core.clock import Clock, SystemClock
from streamline_core.definition import StepDefaults
from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    ErrorCode,
    InvalidStateError,
    LeaseLostError,
    StepNotFoundError,
    StoreError,
    ValidationError,
    WorkflowNotFoundError,
)
from streamline_core.events import Event, EventBus, EventHandler
from streamline_core.executor import Executor, RunState
from streamline_core.heartbeats import Heartbeats
from streamline_core.run import (
    ACTIVE_STATUSES,
    Lease,
    RunError,
    RunStatus,
    StepState,
    StepStatus,
    WorkflowRun,
    new_run_id,
)
from streamline_core.runs import Runs
from streamline_core.stats import EngineStats
from streamline_core.store import RunQuery, Store
from streamline_core.webhooks import hash_token
from streamline_core.worker import Worker
from streamline_core.workflow import Workflow

__all__ = ["Engine"]

log = logging.getLogger("streamline.engine")

_CAS_ATTEMPTS = 50
HOOK_EARLY_WAIT = 5.0
"""Real seconds ``resume_hook`` waits for a run still executing the step that made the hook."""


def _default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Engine:
    """A workflow engine bound to one store.

    Args:
        store: A :class:`~streamline_core.store.Store`, or a URL
            (``"sqlite:///path.db"``, ``"memory://"``, ``"mongodb://host/db"``);
            ``None`` reads ``$STREAMLINE_STORE``, else ``sqlite:///./streamline.db``.
            A store built from a URL is closed by :meth:`shutdown`; a store object
            passed in belongs to the caller.
        plugins: Plugin objects or modules (added to entry-point plugins, group ``streamline``).
        clock: Time source; ``FakeClock`` in tests.
        worker_id: Lease owner name; default ``"<hostname>:<pid>:<random>"``.
        lease: Seconds a claim or heartbeat holds a run.
        max_concurrent_runs: Runs this worker executes at once.
        max_recoveries: A run whose workers died this many times is dead-lettered.
        tenant_id: Scope every read and write to this tenant.
        min_poll_interval: Idle polling starts at this many seconds...
        max_poll_interval: ...and backs off up to this ceiling.
        autostart: Start the worker on the first ``Workflow.start`` (the
            module-level ``default_engine()`` uses this, like the original library).
        load_entry_point_plugins: Load plugins of the entry-point group ``streamline``.
        max_heartbeat_failures: After this many heartbeats in a row fail (store
            unreachable), a running step is cancelled and ``ctx.signal`` set,
            even before the lease runs out.
    """

    def __init__(
        self,
        store: Store | str | None = None,
        *,
        plugins: Iterable[object] = (),
        clock: Clock | None = None,
        worker_id: str | None = None,
        lease: float | timedelta = 30.0,
        max_concurrent_runs: int = 100,
        max_recoveries: int = 5,
        tenant_id: str | None = None,
        min_poll_interval: float = 0.05,
        max_poll_interval: float = 1.0,
        autostart: bool = False,
        load_entry_point_plugins: bool = True,
        max_heartbeat_failures: int = 3,
    ) -> None:
        lease_s = lease.total_seconds() if isinstance(lease, timedelta) else float(lease)
        if lease_s <= 0:
            raise ValidationError(f"lease must be positive, got {lease!r}")
        if max_concurrent_runs < 1:
            raise ValidationError("max_concurrent_runs must be >= 1")
        if max_recoveries < 0:
            raise ValidationError("max_recoveries must be >= 0")
        if max_heartbeat_failures < 1:
            raise ValidationError("max_heartbeat_failures must be >= 1")
        self.max_heartbeat_failures = max_heartbeat_failures
        if not 0 < min_poll_interval <= max_poll_interval:
            raise ValidationError("need 0 < min_poll_interval <= max_poll_interval")
        self._owns_store = store is None or isinstance(store, str)
        self.store_url: str | None = None
        if store is None or isinstance(store, str):
            self.store_url = resolve_store_url(store)
            self.store: Store = store_from_url(self.store_url)
        else:
            self.store = store
        self.clock: Clock = clock or SystemClock()
        self._tracker = IOTracker()
        # Under a clock that can settle (FakeClock), count store calls in flight so
        # advancing time waits for commits still on their way; no cost otherwise.
        add_settler = getattr(self.clock, "add_settler", None)
        self._remove_settler = add_settler(self._tracker.settle) if callable(add_settler) else None
        self._io: Store = (
            TrackedStore(self.store, self._tracker)
            if self._remove_settler is not None
            else self.store
        )
        self.worker_id = worker_id or _default_worker_id()
        self.lease = lease_s
        self.max_concurrent_runs = max_concurrent_runs
        self.max_recoveries = max_recoveries
        self.tenant_id = tenant_id
        self.min_poll_interval = min_poll_interval
        self.max_poll_interval = max_poll_interval
        self.autostart = autostart
        self._bus = EventBus()
        self.plugins = PluginRelay(plugins, load_entry_points=load_entry_point_plugins)
        self.plugins.register(self._bus, name="streamline.event_bus", observer=False)
        self._workflows: dict[str, dict[str, Workflow]] = {}
        self._inflight: dict[str, RunState] = {}
        self._watchers: dict[str, list[asyncio.Future[None]]] = {}
        self._executor = Executor(self)
        self.counters = EngineStats()
        self._worker: Worker | None = None
        self._heartbeats = Heartbeats(self)
        self.stopping = False
        self._closed = False
        self.runs = Runs(self)
        """Queries over this engine's runs: ``get``, ``find``, ``count``, ``delete``."""

    def __repr__(self) -> str:
        mode = "worker" if self.started else "client"
        return f"<Engine {self.worker_id!r} {mode} store={self.store!r}>"

    # --- registry ------------------------------------------------------------------

    def workflow(
        self,
        name: str,
        steps: Mapping[str, Any] | None = None,
        *,
        context: Callable[[Any], Any] | Mapping[str, Any] | None = None,
        version: str = "1",
        defaults: StepDefaults | None = None,
        input_model: type[Any] | None = None,
    ) -> Workflow:
        """Define (or fetch the equal, already registered) workflow ``name``.

        Args:
            name: Workflow id stored on every run.
            steps: ``{step_id: handler | StepConfig | dict}`` in order; omit to
                add steps with the ``@wf.step`` decorator.
            context: ``context(input) -> dict`` (or a dict) building the run's
                initial context.
            version: Definition version, stored on each run.
            defaults: Options for every step (``StepDefaults``).
            input_model: A pydantic model that validates ``start`` input.

        Raises:
            ValidationError: The definition is invalid, or a different one is
                registered under the same name and version.
        """
        wf = Workflow(
            self,
            name,
            steps,
            context=context,
            version=version,
            defaults=defaults,
            input_model=input_model,
        )
        versions = self._workflows.setdefault(name, {})
        existing = versions.get(wf.version)
        if existing is not None:
            if existing.same_definition(wf):
                return existing
            raise ValidationError(
                f"workflow {name!r} version {wf.version!r} is already registered with a "
                "different definition; give the new one another version"
            )
        versions[wf.version] = wf
        if self._worker is not None:
            self._worker.wake()
        return wf

    def get_workflow(self, name: str, version: str | None = None) -> Workflow:
        """A registered workflow (the latest registered version when ``version`` is None)."""
        versions = self._workflows.get(name)
        if not versions:
            raise WorkflowNotFoundError(f"no workflow named {name!r} is registered")
        if version is None:
            return list(versions.values())[-1]
        try:
            return versions[version]
        except KeyError:
            raise WorkflowNotFoundError(
                f"workflow {name!r} has no registered version {version!r}"
            ) from None

    @property
    def workflow_names(self) -> frozenset[str]:
        """Names of every registered workflow."""
        return frozenset(self._workflows)

    @property
    def registered_versions(self) -> dict[str, tuple[str, ...]]:
        """Workflow name -> versions registered here: what this worker may claim."""
        return {name: tuple(versions) for name, versions in self._workflows.items() if versions}

    # --- events --------------------------------------------------------------------

    def on(
        self, name: str, handler: EventHandler | None = None
    ) -> Callable[[EventHandler], EventHandler]:
        """Subscribe to an event (``"workflow:completed"``, ``"*"``, ...); a decorator too."""
        result = self._bus.on(name, handler)
        return result

    def off(self, name: str, handler: EventHandler) -> None:
        """Unsubscribe ``handler`` from ``name`` (nothing happens if it was not subscribed)."""
        self._bus.off(name, handler)

    def _listens(self, name: str) -> bool:
        """Whether an event ``name`` would reach anyone (lets hot paths skip building it)."""
        return bool(self.plugins.observers) or self._bus.wants(name)

    async def _emit(
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
        if not self.plugins.observers and not self._bus.wants(name):
            if name in ("engine:error", "scheduler:error") and error is not None:
                log.warning("%s: %s", name, error)
            return
        event = Event(
            name=name,
            run_id=run.id if run is not None else run_id,
            step_id=step_id,
            data=data,
            error=error,
            at=self.clock.now(),
            workflow_id=run.workflow_id if run is not None else workflow_id,
        )
        failures = await self.plugins.event(event)
        if failures and name != "engine:error":
            for exc in failures:
                await self._emit("engine:error", run_id=event.run_id, error=exc)

    async def _observe(self, call: Awaitable[list[BaseException]], run_id: str) -> None:
        for exc in await call:
            await self._emit("engine:error", run_id=run_id, error=exc)

    async def _emit_if_ended(self, run: WorkflowRun, error: BaseException | None = None) -> None:
        if not run.is_terminal:
            return
        self._notify(run.id)
        if run.status == RunStatus.DONE:
            self.counters.completed += 1
            await self._emit("workflow:completed", run=run, data=run.output)
        elif run.status == RunStatus.FAILED:
            self.counters.failed += 1
            await self._emit(
                "workflow:failed",
                run=run,
                step_id=run.error.step_id if run.error else None,
                data={"error": run.error.model_dump(mode="json") if run.error else None},
                error=error,
            )
        else:
            await self._emit("workflow:cancelled", run=run)

    def _notify(self, run_id: str) -> None:
        for fut in self._watchers.pop(run_id, ()):
            if not fut.done():
                fut.set_result(None)

    # --- lifecycle -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True while the worker runs."""
        return self._worker is not None and not self.stopping

    async def start(self) -> None:
        """Start the worker: claim due runs, heartbeat leases, run timers."""
        if self._closed:
            raise InvalidStateError("this engine was shut down; create a new one")
        if self._worker is not None:
            return
        self.stopping = False
        self._worker = Worker(self)
        self._worker.start()

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop claiming, let in-flight steps commit within ``timeout`` real seconds,
        cancel what is left, release every lease, and close an owned store."""
        if self._closed:
            return
        self.stopping = True
        if self._worker is not None:
            await self._worker.stop()
        states = list(self._inflight.values())
        if states:
            pending = {s.task for s in states if s.task is not None and not s.task.done()}
            if pending:
                _, still = await asyncio.wait(pending, timeout=timeout)
                for s in states:
                    if s.task in still:
                        s.interrupt("shutdown")
                if still:
                    await asyncio.wait(still, timeout=5.0)
            for s in states:
                await self._release_quietly(s.run)
        await self._heartbeats.stop()
        self._closed = True
        self._worker = None
        if self._remove_settler is not None:
            self._remove_settler()
        if self._owns_store:
            await self._io.close()

    async def _release_quietly(self, run: WorkflowRun) -> None:
        try:
            current = await self._io.get(run.id)
            if (
                current is not None
                and not current.is_terminal
                and current.lease is not None
                and current.lease.owner == self.worker_id
            ):
                await self._io.transition(
                    current.id,
                    current.revision,
                    P.release(current, self.clock.now()),
                    owner=self.worker_id,
                )
        except StoreError:
            pass

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    # --- dispatch --------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        """How many more runs this worker may execute now."""
        return self.max_concurrent_runs - len(self._inflight)

    def stats(self) -> dict[str, float]:
        """Counters (claims, commits, retries, recoveries, ...) and gauges for dashboards.

        Gauges: ``in_flight`` (runs executing here), ``free_slots``,
        ``poll_delay`` (the worker's current idle poll delay, seconds),
        ``idle_polls`` and ``started`` (1 or 0).
        """
        out = self.counters.as_dict()
        worker = self._worker
        out.update(
            in_flight=len(self._inflight),
            free_slots=self.free_slots,
            poll_delay=(
                worker.poll_delay
                if worker is not None and math.isfinite(worker.poll_delay)
                else 0.0
            ),
            idle_polls=worker.idle_polls if worker is not None else 0,
            started=1 if self.started else 0,
        )
        return out

    def _can_take_locally(self) -> bool:
        return self.started and self.free_slots > 0

    def _dispatch(self, run: WorkflowRun) -> bool:
        """Execute a run this worker has just leased, on its own task."""
        wf = self._workflow_for(run)
        if wf is None or run.id in self._inflight:
            return False
        assert run.lease is not None
        state = RunState(run=run, workflow=wf, lease_expires=run.lease.expires_at)
        self._inflight[run.id] = state
        state.task = asyncio.create_task(self._executor.drive(state), name=f"streamline:{run.id}")
        # Client engines' `execute` holds leases too: heartbeats need no worker loop.
        self._heartbeats.ensure_running()
        return True

    def _drive_finished(self, state: RunState) -> None:
        if self._inflight.get(state.run.id) is state:
            del self._inflight[state.run.id]
        self._notify(state.run.id)
        if self._worker is not None:
            self._worker.wake()

    def _note_due(self, run: WorkflowRun) -> None:
        """Remember a local run's next due time so the worker wakes for it."""
        if self._worker is not None and run.next_run_at is not None and not run.paused:
            self._worker.add_timer(run.next_run_at)

    def _workflow_for(self, run: WorkflowRun) -> Workflow | None:
        versions = self._workflows.get(run.workflow_id)
        if not versions:
            return None
        return versions.get(run.workflow_version)

    async def _heartbeat_now(self, run_id: str) -> None:
        state = self._inflight.get(run_id)
        if state is None:
            return
        now = self.clock.now()
        try:
            status = await self._io.heartbeat(run_id, self.worker_id, now, self.lease)
        except LeaseLostError:
            state.interrupt("lease_lost")
            return
        state.lease_expires = now + timedelta(seconds=self.lease)
        if status == RunStatus.CANCELLED:
            state.interrupt("cancelled")

    # --- scoping ---------------------------------------------------------------------

    def _in_scope(self, run: WorkflowRun | None, workflow_id: str | None = None) -> bool:
        if run is None:
            return False
        if self.tenant_id is not None and run.tenant_id != self.tenant_id:
            return False
        return workflow_id is None or run.workflow_id == workflow_id

    async def _get(self, run_id: str, workflow_id: str | None = None) -> WorkflowRun | None:
        run = await self._io.get(run_id)
        return run if self._in_scope(run, workflow_id) else None

    async def _require(self, run_id: str, workflow_id: str | None = None) -> WorkflowRun:
        run = await self._get(run_id, workflow_id)
        if run is None:
            raise WorkflowNotFoundError(f"run {run_id!r} not found", run_id=run_id)
        return run

    # --- creating runs -----------------------------------------------------------------

    async def _create_run(
        self,
        wf: Workflow,
        input_value: Any,
        *,
        meta: Mapping[str, Any] | None,
        idempotency_key: str | None,
        priority: int,
        tenant_id: str | None,
        start_at: datetime | None,
    ) -> WorkflowRun:
        if self.autostart and not self.started and not self._closed:
            await self.start()
        if tenant_id is not None and self.tenant_id is not None and tenant_id != self.tenant_id:
            raise ValidationError(
                f"this engine is scoped to tenant {self.tenant_id!r}; cannot start a run "
                f"for tenant {tenant_id!r}"
            )
        tenant = self.tenant_id if self.tenant_id is not None else tenant_id
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValidationError(f"priority must be an int, got {priority!r}")
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not idempotency_key
        ):
            raise ValidationError("idempotency_key must be a non-empty string")
        if start_at is not None and start_at.tzinfo is None:
            raise ValidationError("start_at must be a timezone-aware datetime")
        stored_input = wf._validate_input(input_value)
        try:
            stored_meta = to_json_value(dict(meta or {}), "meta")
        except (Unstorable, TypeError, ValueError) as exc:
            raise ValidationError(f"meta is not JSON-compatible: {exc}") from None
        context = await wf._build_context(stored_input)
        now = self.clock.now()
        due = now if start_at is None or start_at <= now else start_at
        local = due == now and self._can_take_locally()
        steps = [StepState(step_id=s.step_id) for s in wf.steps]
        if local:
            steps[0] = StepState(
                step_id=wf.steps[0].step_id, status=StepStatus.RUNNING, started_at=now
            )
        run = WorkflowRun(
            id=new_run_id(now),
            workflow_id=wf.name,
            workflow_version=wf.version,
            tenant_id=tenant,
            status=RunStatus.RUNNING,
            current_step_id=wf.steps[0].step_id,
            steps=steps,
            context=context,
            input=stored_input,
            next_run_at=due,
            priority=priority,
            lease=Lease(**P.lease_value(self.worker_id, now, self.lease)) if local else None,
            idempotency_key=idempotency_key,
            meta=stored_meta,
            created_at=now,
            updated_at=now,
        )
        stored, created = await self._io.create(run)
        if not created:
            return stored
        await self._emit("workflow:started", run=stored, data={"input": stored_input})
        if local:
            self._dispatch(stored)
        elif self._worker is not None:
            self._worker.add_timer(due)
        return stored

    # --- client operations (CAS loops; ConflictError never escapes) -----------------------

    async def _cas(
        self,
        run_id: str,
        workflow_id: str | None,
        build: Callable[[WorkflowRun], dict[str, Any]],
    ) -> WorkflowRun:
        """Read, build a patch (which may raise a domain error), write; retry on conflict."""
        for _ in range(_CAS_ATTEMPTS):
            run = await self._require(run_id, workflow_id)
            patch = build(run)
            try:
                return await self._io.transition(run.id, run.revision, patch)
            except ConflictError:
                await asyncio.sleep(0)
                continue
        raise InvalidStateError(
            f"run {run_id!r} kept changing while being updated; try again", run_id=run_id
        )

    def _local_lease(self, run: WorkflowRun) -> dict[str, Any] | None:
        if run.paused or not self._can_take_locally() or self._workflow_for(run) is None:
            return None
        return P.lease_value(self.worker_id, self.clock.now(), self.lease)

    def _complete_waiting(self, run: WorkflowRun, output: Any) -> dict[str, Any]:
        idx = run.step_index(run.current_step_id) if run.current_step_id else -1
        if idx < 0:
            raise InvalidStateError(f"run {run.id!r} has no current step", run_id=run.id)
        patch = P.complete_step(
            run,
            idx,
            output=output,
            now=self.clock.now(),
            lease=self._local_lease(run),
            keep_running=False,
        )
        return patch

    async def _after_client_write(self, run: WorkflowRun) -> None:
        """Run a run this engine just leased to itself; otherwise wake local timers."""
        if run.lease is not None and run.lease.owner == self.worker_id and not run.is_terminal:
            if not self._dispatch(run):
                await self._release_quietly(run)
        elif self._worker is not None:
            self._worker.wake()

    async def _resume(self, run_id: str, payload: Any, workflow_id: str | None) -> WorkflowRun:
        try:
            stored_payload = to_json_value(payload, "payload")
        except Unstorable as exc:
            raise ValidationError(f"resume payload is not JSON-compatible: {exc}") from None

        def build(run: WorkflowRun) -> dict[str, Any]:
            if run.status != RunStatus.WAITING or run.wait is None or run.wait.kind != "human":
                raise InvalidStateError(
                    f"run {run.id!r} is {run.status.value}"
                    + (f" ({run.wait.kind})" if run.wait else "")
                    + "; only a run waiting on ctx.wait can be resumed",
                    run_id=run.id,
                )
            return self._complete_waiting(run, stored_payload)

        run = await self._cas(run_id, workflow_id, build)
        self._notify(run.id)
        await self._emit("workflow:resumed", run=run, data=stored_payload)
        await self._emit_if_ended(run)
        await self._after_client_write(run)
        return run

    async def _resume_by_hook(
        self, token: str, payload: Any, wait: float = HOOK_EARLY_WAIT
    ) -> WorkflowRun:
        def not_found() -> WorkflowNotFoundError:
            return WorkflowNotFoundError("unknown or already used hook token")

        if not isinstance(token, str) or not 16 <= len(token) <= 256 or "." not in token:
            raise not_found()
        run_id = token.partition(".")[0]
        token_hash = hash_token(token)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            run = await self._get(run_id)
            if run is None:
                raise not_found()
            if (
                run.status == RunStatus.WAITING
                and run.wait is not None
                and run.wait.kind == "human"
                and run.wait.hook_token_hash == token_hash
            ):
                try:
                    return await self._resume(run.id, payload, None)
                except InvalidStateError:
                    raise not_found() from None
            # The token may come back before the step that created it has
            # committed its wait (a fast webhook): give that step a moment.
            left = deadline - loop.time()
            if run.status != RunStatus.RUNNING or left <= 0:
                raise not_found()
            await self._watch(run_id, min(0.05, left))

    async def _cancel(
        self, run_id: str, reason: str | None, workflow_id: str | None
    ) -> WorkflowRun:
        def build(run: WorkflowRun) -> dict[str, Any]:
            if run.is_terminal:
                raise InvalidStateError(
                    f"run {run.id!r} is already {run.status.value}", run_id=run.id
                )
            now = self.clock.now()
            return {
                "status": RunStatus.CANCELLED.value,
                "error": RunError(
                    code=ErrorCode.WORKFLOW_CANCELLED.value,
                    message=reason or "cancelled",
                    step_id=run.current_step_id,
                ).model_dump(),
                "ended_at": now,
                "updated_at": now,
                "next_run_at": None,
            }

        run = await self._cas(run_id, workflow_id, build)
        state = self._inflight.get(run.id)
        if state is not None:
            state.interrupt("cancelled")
        await self._emit_if_ended(run)
        return run

    async def _set_paused(self, run_id: str, paused: bool, workflow_id: str | None) -> WorkflowRun:
        def build(run: WorkflowRun) -> dict[str, Any]:
            if run.is_terminal:
                raise InvalidStateError(
                    f"run {run.id!r} is {run.status.value}; only active runs can be "
                    f"{'paused' if paused else 'unpaused'}",
                    run_id=run.id,
                )
            patch: dict[str, Any] = {"paused": paused, "updated_at": self.clock.now()}
            if not paused and run.lease is None:
                lease = self._local_lease(run.model_copy(update={"paused": False}))
                due = run.next_run_at is not None and run.next_run_at <= self.clock.now()
                if lease is not None and due:
                    patch["lease"] = lease
            return patch

        run = await self._cas(run_id, workflow_id, build)
        if not paused:
            await self._after_client_write(run)
        return run

    async def _rewind(self, run_id: str, step_id: str, workflow_id: str | None) -> WorkflowRun:
        def build(run: WorkflowRun) -> dict[str, Any]:
            idx = run.step_index(step_id)
            if idx < 0:
                raise StepNotFoundError(
                    f"run {run.id!r} has no step {step_id!r}", run_id=run.id, step_id=step_id
                )
            now = self.clock.now()
            patch: dict[str, Any] = {
                "status": RunStatus.RUNNING.value,
                "current_step_id": step_id,
                "output": None,
                "error": None,
                "ended_at": None,
                "wait": None,
                "lease": self._local_lease(run),
                "next_run_at": now,
                "updated_at": now,
            }
            for j in range(idx, len(run.steps)):
                patch[f"steps.{j}"] = StepState(step_id=run.steps[j].step_id).model_dump()
            return patch

        current = await self._require(run_id, workflow_id)
        if current.is_terminal and current.idempotency_key is not None:
            holders = await self._io.find(
                RunQuery(
                    workflow_id=current.workflow_id,
                    tenant_id=current.tenant_id,
                    idempotency_key=current.idempotency_key,
                    status=tuple(ACTIVE_STATUSES),
                    limit=1,
                )
            )
            if holders.items:
                raise InvalidStateError(
                    f"cannot rewind run {run_id!r}: run {holders.items[0].id!r} holds its "
                    f"idempotency key {current.idempotency_key!r}",
                    run_id=run_id,
                )
        if current.step_index(step_id) < 0:
            raise StepNotFoundError(
                f"run {run_id!r} has no step {step_id!r}", run_id=run_id, step_id=step_id
            )
        # Stop a local execution first, so its result (even one already on its
        # way to the store) is never written onto the rewound run.
        state = self._inflight.get(run_id)
        if state is not None:
            state.interrupt("rewound")
        run = await self._cas(run_id, workflow_id, build)
        if state is not None:
            await state.done.wait()
        await self._after_client_write(run)
        return run

    async def emit_event(self, name: str, data: Any = None, *, run_id: str | None = None) -> int:
        """Deliver event ``name`` to waiting runs; returns how many runs it resumed.

        Without ``run_id`` every run waiting on ``name`` (in this engine's tenant)
        resumes with ``data`` as its step output; nobody waiting means nothing
        happens (broadcasts are never buffered). With ``run_id`` only that run:
        if it is not waiting on ``name`` yet, the event is kept in its mailbox for
        a later ``ctx.wait_for(name)`` and 0 is returned.

        Raises:
            WorkflowNotFoundError: ``run_id`` is unknown (or another tenant's).
        """
        if not isinstance(name, str) or not name:
            raise ValidationError("event name must be a non-empty string")
        try:
            stored = to_json_value(data, "event data")
        except Unstorable as exc:
            raise ValidationError(f"event data is not JSON-compatible: {exc}") from None
        if run_id is not None:
            return await self._deliver_targeted(run_id, name, stored)
        resumed = 0
        cursor: str | None = None
        while True:
            page = await self._io.find(
                RunQuery(
                    waiting_for_event=name,
                    tenant_id=self.tenant_id,
                    sort="created_at",
                    limit=200,
                    cursor=cursor,
                )
            )
            for run in page.items:
                if await self._deliver_to(run.id, name, stored, buffer=False):
                    resumed += 1
            if page.next_cursor is None:
                return resumed
            cursor = page.next_cursor

    async def _deliver_targeted(self, run_id: str, name: str, data: Any) -> int:
        await self._require(run_id)
        return 1 if await self._deliver_to(run_id, name, data, buffer=True) else 0

    async def _deliver_to(self, run_id: str, name: str, data: Any, *, buffer: bool) -> bool:
        outcome: dict[str, bool] = {}

        def build(run: WorkflowRun) -> dict[str, Any]:
            outcome.clear()
            if run.is_terminal:
                raise _Skip()
            waiting = (
                run.status == RunStatus.WAITING
                and run.wait is not None
                and run.wait.kind == "event"
                and run.wait.event == name
            )
            if waiting:
                outcome["resumed"] = True
                return self._complete_waiting(run, data)
            if not buffer:
                raise _Skip()
            now = self.clock.now()
            mailbox = [m.model_dump() for m in run.mailbox]
            mailbox.append({"name": name, "data": data, "at": now})
            return {"mailbox": mailbox, "updated_at": now}

        try:
            run = await self._cas(run_id, None, build)
        except (_Skip, WorkflowNotFoundError):
            return False
        if outcome.get("resumed"):
            await self._emit("workflow:resumed", run=run, data=data)
            await self._emit_if_ended(run)
            await self._after_client_write(run)
            return True
        return False

    async def _execute(self, run_id: str, workflow_id: str | None) -> WorkflowRun:
        run = await self._require(run_id, workflow_id)
        state = self._inflight.get(run.id)
        if state is not None or run.is_terminal or run.paused:
            return run
        now = self.clock.now()
        if (
            run.lease is not None
            and run.lease.expires_at > now
            and run.lease.owner != self.worker_id
        ):
            return run
        if run.next_run_at is None or run.next_run_at > now:
            return run
        if self._workflow_for(run) is None:
            raise WorkflowNotFoundError(
                f"workflow {run.workflow_id!r} version {run.workflow_version!r} is not "
                "registered on this engine",
                run_id=run.id,
            )
        patch: dict[str, Any] = {"lease": P.lease_value(self.worker_id, now, self.lease)}
        if run.lease is not None and run.status == RunStatus.RUNNING:
            patch["recoveries"] = run.recoveries + 1
        try:
            leased = await self._io.transition(run.id, run.revision, patch)
        except ConflictError:
            return await self._require(run_id, workflow_id)
        if not self._dispatch(leased):
            return leased
        state = self._inflight.get(run.id)
        if state is not None:
            await state.done.wait()
        return await self._require(run_id, workflow_id)

    async def _wait_for(
        self,
        run_id: str,
        workflow_id: str | None,
        timeout: float | None,
        poll_interval: float,
        suspended: bool = False,
    ) -> WorkflowRun:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            run = await self._require(run_id, workflow_id)
            if run.is_terminal or (
                suspended
                and run.status == RunStatus.WAITING
                and run.wait is not None
                and run.wait.kind != "retry"
            ):
                return run
            wait_s = poll_interval
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError(
                        f"run {run_id!r} is still {run.status.value} after {timeout}s"
                    )
                wait_s = min(wait_s, left)
            await self._watch(run_id, wait_s)

    async def _watch(self, run_id: str, seconds: float) -> None:
        """Wait until this engine changes ``run_id`` locally, or ``seconds`` (real) pass."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.setdefault(run_id, []).append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), seconds)
        except TimeoutError:
            pass
        finally:
            waiters = self._watchers.get(run_id)
            if waiters and fut in waiters:
                waiters.remove(fut)
                if not waiters:
                    del self._watchers[run_id]

    async def _dead_letter(self, run: WorkflowRun) -> None:
        error = RunError(
            code=ErrorCode.DEAD_LETTERED.value,
            message=(
                f"run {run.id!r} was recovered {run.recoveries} times (max_recoveries="
                f"{self.max_recoveries}); its workers keep dying, so it is dead-lettered"
            ),
            step_id=run.current_step_id,
        )
        try:
            done = await self._io.transition(
                run.id,
                run.revision,
                P.fail_run(run, error, now=self.clock.now()),
                owner=self.worker_id,
            )
        except StoreError as exc:
            await self._emit("engine:error", run_id=run.id, error=exc)
            return
        self.counters.dead_lettered += 1
        await self._emit_if_ended(done)

    async def _take_claimed(self, runs: list[WorkflowRun]) -> None:
        now = self.clock.now()
        for run in runs:
            self.counters.claims += 1
            if run.next_run_at is not None:
                lag = max(0.0, (now - run.next_run_at).total_seconds())
                self.counters.last_pickup_lag = lag
                self.counters.max_pickup_lag = max(self.counters.max_pickup_lag, lag)
            if run.recoveries > self.max_recoveries and run.status == RunStatus.RUNNING:
                await self._dead_letter(run)
                continue
            if self._workflow_for(run) is None:
                # Only a store ignoring claim's versions gets here; the run stays
                # leased until the lease expires, so nobody spins on it.
                await self._emit(
                    "engine:error",
                    run=run,
                    error=WorkflowNotFoundError(
                        f"run {run.id!r} needs workflow {run.workflow_id!r} version "
                        f"{run.workflow_version!r}, which this worker does not have",
                        run_id=run.id,
                    ),
                )
                continue
            idx = run.step_index(run.current_step_id) if run.current_step_id else -1
            if (
                run.status == RunStatus.RUNNING
                and idx >= 0
                and run.steps[idx].status == StepStatus.RUNNING
            ):
                self.counters.recoveries += 1
                await self._emit(
                    "workflow:recovered",
                    run=run,
                    step_id=run.current_step_id,
                    data={"recoveries": run.recoveries},
                )
            self._dispatch(run)

    async def _report_corrupt(self, exc: DataCorruptionError) -> None:
        await self._emit("engine:error", run_id=exc.run_id, error=exc)


class _Skip(Exception):
    """Internal: a delivery does not apply to this run."""
