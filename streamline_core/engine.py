"""``Engine``: the façade that builds one engine's runtime and parts, and wires them.

Façade layer, top: imports the runtime's parts, the ``Workflow`` and
``Runs`` façades, and the stores' URL resolution; nothing below imports it.
It holds configuration, argument checks and lifecycle; the logic lives in
the parts (``streamline_core._runtime``).

An engine that is not started is a *client*: it creates, resumes, cancels and
queries runs in the store, and whichever started engine (a worker) claims a
run executes it. ``async with engine`` (or ``await engine.start()``) turns it
into a worker too: it claims due runs, runs the ones it starts at once on
local tasks, and heartbeats its leases.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Self, Unpack

import streamline_core._arguments as A
from streamline_core._durations import seconds
from streamline_core._event_bus import EventBus
from streamline_core._loop_thread import LoopThread
from streamline_core._plugins import PluginRelay
from streamline_core._runtime.client import Client
from streamline_core._runtime.emitter import Emitter
from streamline_core._runtime.registry import Registry
from streamline_core._runtime.runtime import Runtime
from streamline_core._runtime.watchers import Watchers
from streamline_core._runtime.worker import Worker
from streamline_core._store_url import resolve_store_url, store_from_url
from streamline_core._tracking import IOTracker, TrackedStore
from streamline_core.clock import Clock, SystemClock
from streamline_core.errors import InvalidStateError, ValidationError
from streamline_core.events import EventHandler
from streamline_core.retention import Retention
from streamline_core.run import WorkflowRun
from streamline_core.runs import Runs
from streamline_core.schedules import Schedules
from streamline_core.stats import EngineStats
from streamline_core.store import Store, check_write_ids
from streamline_core.sync import SyncEngine
from streamline_core.workflow import Workflow
from streamline_core.workflow_spec import WorkflowOptions, WorkflowSpec

__all__ = ["Engine"]


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
        retention: Delete finished runs older than a per-status age (a started
            worker sweeps; see :class:`~streamline_core.retention.Retention`).
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str] | None = None,
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
        retention: Retention | None = None,
    ) -> None:
        lease_s = seconds(lease, "lease")
        if lease_s is None or lease_s <= 0:
            raise ValidationError(f"lease must be positive, got {lease!r}")
        A.integer(max_concurrent_runs, "max_concurrent_runs", low=1)
        A.integer(max_recoveries, "max_recoveries", low=0)
        A.integer(max_heartbeat_failures, "max_heartbeat_failures", low=1)
        min_poll = seconds(min_poll_interval, "min_poll_interval") or 0.0
        max_poll = seconds(max_poll_interval, "max_poll_interval") or 0.0
        if not 0 < min_poll <= max_poll:
            raise ValidationError("need 0 < min_poll_interval <= max_poll_interval")
        A.optional_text(tenant_id, "tenant_id")
        A.optional_text(worker_id, "worker_id")
        if retention is not None and not isinstance(retention, Retention):
            raise ValidationError("retention must be a Retention")
        if isinstance(store, os.PathLike):
            store = f"sqlite:///{os.fspath(store)}"  # a path is an SQLite database file
        self._owns_store = store is None or isinstance(store, str)
        self.store_url: str | None = None
        if store is None or isinstance(store, str):
            self.store_url = resolve_store_url(store)
            self.store: Store = store_from_url(self.store_url)
        elif isinstance(store, Store):
            self.store = store
        else:
            raise ValidationError(
                f"store must be a Store, a store URL or a path, got {type(store).__name__}"
            )
        check_write_ids(self.store)
        self.clock: Clock = clock or SystemClock()
        tracker = IOTracker()
        # Under a clock that can settle (FakeClock), count store calls in flight so
        # advancing time waits for commits still on their way; no cost otherwise.
        add_settler = getattr(self.clock, "add_settler", None)
        self._remove_settler = add_settler(tracker.settle) if callable(add_settler) else None
        io: Store = (
            TrackedStore(self.store, tracker) if self._remove_settler is not None else self.store
        )
        self.min_poll_interval = min_poll
        self.max_poll_interval = max_poll
        self.autostart = autostart
        self._bus = EventBus()
        self.plugins = PluginRelay(plugins, load_entry_points=load_entry_point_plugins)
        self.plugins.register(self._bus, name="streamline.event_bus", observer=False)
        self.counters = EngineStats()
        watchers = Watchers()
        rt = Runtime(
            io=io,
            clock=self.clock,
            plugins=self.plugins,
            events=Emitter(self.plugins, self._bus, self.clock, self.counters, watchers),
            watchers=watchers,
            counters=self.counters,
            tracker=tracker,
            registry=Registry(),
            worker_id=worker_id or _default_worker_id(),
            lease=lease_s,
            max_concurrent_runs=max_concurrent_runs,
            max_recoveries=max_recoveries,
            max_heartbeat_failures=max_heartbeat_failures,
            tenant_id=tenant_id,
            retention=retention,
        )
        self._rt = rt
        # Settings, read-only after construction (the parts read them from the runtime).
        self.worker_id = rt.worker_id
        self.lease = lease_s
        self.max_concurrent_runs = max_concurrent_runs
        self.max_recoveries = max_recoveries
        self.max_heartbeat_failures = max_heartbeat_failures
        self.tenant_id = tenant_id
        self._client = Client.assemble(rt, autostart=self._autostart, shutdown=self.shutdown)
        self._dispatcher = self._client.dispatcher
        self._heartbeats = self._client.heartbeats
        self._worker: Worker | None = None
        self._workflows: dict[tuple[str, str], Workflow] = {}
        self.runs = Runs(self._client)
        """Queries over this engine's runs: ``get``, ``find``, ``count``, ``delete``."""
        self.schedules = Schedules(self._client)  # list, get, pause, trigger, backfill, ...
        self.schedule = self.schedules.declare  # engine.schedule(name, workflow, cron=|every=, ...)
        self._sync: SyncEngine | None = None

    @property
    def sync(self) -> SyncEngine:
        """Blocking calls for code without an event loop (see :mod:`streamline_core.sync`)."""
        if self._sync is None:
            self._sync = SyncEngine(
                LoopThread(),
                self.runs,
                self.get_workflow,
                self.emit_event,
                self.start,
                self.shutdown,
            )
        return self._sync

    def __repr__(self) -> str:
        mode = "worker" if self.started else "client"
        return f"<Engine {self.worker_id!r} {mode} store={self.store!r}>"

    # --- settings ------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True once shutdown began."""
        return self._rt.stopping

    # --- registry ------------------------------------------------------------------

    def workflow(
        self,
        name: str,
        steps: Mapping[str, Any] | None = None,
        **options: Unpack[WorkflowOptions],
    ) -> Workflow:
        """Define (or fetch the equal, already registered) workflow ``name``.

        Args:
            name: Workflow id stored on every run.
            steps: ``{step_id: handler | StepConfig | dict}`` in order; omit to
                add steps with the ``@wf.step`` decorator.
            **options: ``context``, ``version``, ``defaults``, ``input_model``
                and the rest of :class:`~streamline_core.workflow_spec.WorkflowOptions`.

        Raises:
            ValidationError: The definition is invalid, or a different one is
                registered under the same name and version.
        """
        spec = self._rt.registry.add(WorkflowSpec(name, steps, **options))
        key = (spec.name, spec.version)
        wf = self._workflows.get(key)
        if wf is None:
            wf = self._workflows[key] = Workflow(spec, self._client)
            self._rt.wake()
        return wf

    def get_workflow(self, name: str, version: str | None = None) -> Workflow:
        """A registered workflow (the latest registered version when ``version`` is None).

        Raises:
            WorkflowNotFoundError: no such workflow or version.
        """
        spec = self._rt.registry.get(name, version)
        return self._workflows.setdefault((spec.name, spec.version), Workflow(spec, self._client))

    @property
    def workflow_names(self) -> frozenset[str]:
        """Names of every registered workflow."""
        return self._rt.registry.names

    @property
    def registered_versions(self) -> dict[str, tuple[str, ...]]:
        """Workflow name -> versions registered here: what this worker may claim."""
        return self._rt.registry.versions()

    # --- events --------------------------------------------------------------------

    def on(
        self, name: str, handler: EventHandler | None = None
    ) -> Callable[[EventHandler], EventHandler]:
        """Subscribe to an event (``"workflow:completed"``, ``"*"``, ...); a decorator too."""
        return self._bus.on(name, handler)

    def off(self, name: str, handler: EventHandler) -> None:
        """Unsubscribe ``handler`` from ``name`` (nothing happens if it was not subscribed)."""
        self._bus.off(name, handler)

    async def emit_event(
        self,
        name: str,
        data: Any = None,
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Deliver event ``name``; returns how many waiting runs it resumed.

        A broadcast also applies ``cancel_on`` and ``trigger`` of the workflows
        registered here (``idempotency_key`` keys trigger starts); with ``run_id``
        only that run (its mailbox when not waiting yet). See
        :mod:`streamline_core._runtime.delivery`.

        Raises:
            WorkflowNotFoundError: ``run_id`` is unknown (or another tenant's).
        """
        A.text(name, "event name")
        return await self._client.delivery.emit_event(
            name, data, None if run_id is None else A.run_id(run_id), idempotency_key
        )

    async def migrate_run(
        self, run_id: str, to_version: str, step_map: Mapping[str, str] | None = None
    ) -> WorkflowRun:
        """Move a run no worker holds onto version ``to_version`` of its workflow (one write).

        Done outputs are carried by step id or ``step_map``; see docs/versions.md.
        """
        return await self._client.migration.migrate_run(run_id, to_version, step_map)

    async def resume_hook(self, token: str, payload: Any = None) -> WorkflowRun:
        """Resume the run waiting on hook ``token`` (see :func:`~streamline_core.resume_hook`).

        Raises:
            WorkflowNotFoundError: the token is empty, malformed, unknown or used.
        """
        return await self._client.control.resume_by_hook(token, payload)

    # --- lifecycle -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True while the worker runs."""
        return self._rt.started

    async def start(self) -> None:
        """Start the worker: claim due runs, heartbeat leases, run timers."""
        if self._rt.closed:
            raise InvalidStateError("this engine was shut down; create a new one")
        if self._worker is not None:
            return
        self._rt.stopping = False
        await self.schedules.store_declared()  # before claiming, so no tick reads old settings
        self._worker = Worker(
            self._rt, self._dispatcher, self.min_poll_interval, self.max_poll_interval
        )
        self._rt.worker = self._worker
        self._worker.start()

    async def _autostart(self) -> None:
        if self.autostart and not self.started and not self._rt.closed:
            await self.start()

    async def shutdown(self, timeout: float = 30.0) -> None:
        """Stop claiming, let in-flight steps commit within ``timeout`` real seconds,
        cancel what is left, release every lease, and close an owned store."""
        rt = self._rt
        if rt.closed:
            return
        await self.schedules.settle()  # a declaration on its way to the store is kept
        rt.stopping = True
        if self._worker is not None:
            await self._worker.stop()
        await self._dispatcher.drain(timeout)
        await self._heartbeats.stop()
        rt.closed = True
        self._worker = None
        rt.worker = None
        if self._remove_settler is not None:
            self._remove_settler()
        if self._owns_store:
            await rt.io.close()

    def _abandon(self) -> None:
        """Stop every task at once, keeping the leases: a simulated crash (crash tests only)."""
        self._client.abandon(self._worker)

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

    # --- gauges ----------------------------------------------------------------------

    @property
    def free_slots(self) -> int:
        """How many more runs this worker may execute now."""
        return self._rt.free_slots

    @property
    def in_flight(self) -> int:
        """How many runs execute in this process now."""
        return len(self._rt.inflight)

    def stats(self) -> dict[str, float]:
        """Counters (claims, commits, retries, recoveries, ...) and gauges for dashboards.

        Gauges: ``in_flight`` (runs executing here), ``free_slots``,
        ``poll_delay`` (the worker's current idle poll delay, seconds),
        ``idle_polls`` and ``started`` (1 or 0).
        """
        out = self.counters.as_dict()
        idle = {"poll_delay": 0.0, "idle_polls": 0}
        out.update(self._worker.gauges() if self._worker is not None else idle)
        out.update(in_flight=self.in_flight, free_slots=self.free_slots, started=int(self.started))
        return out
