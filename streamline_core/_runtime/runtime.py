"""``Runtime``: what every part of the engine shares, and the only thing the parts receive.

Runtime layer: imports the store protocol, the clock, the plugin relay and
the bottom of the runtime (emitter, watchers, registry, in-flight states).
The ``Engine`` façade builds one per engine; a part reads its settings and
uses its services, and never sees the façade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import streamline_core._patches as P
from streamline_core._plugins import PluginRelay
from streamline_core._runtime.emitter import Emitter
from streamline_core._runtime.inflight import RunState
from streamline_core._runtime.registry import Registry
from streamline_core._runtime.slots import supports_limits
from streamline_core._runtime.watchers import Watchers
from streamline_core._tracking import IOTracker
from streamline_core.clock import Clock
from streamline_core.retention import Retention
from streamline_core.run import WorkflowRun
from streamline_core.stats import EngineStats
from streamline_core.store import Store

__all__ = ["Runtime", "WorkerSignals"]


class WorkerSignals(Protocol):
    """What the started worker loop offers the other parts."""

    def wake(self) -> None:
        """Claim now (something became runnable or a slot freed)."""
        ...

    def add_timer(self, at: datetime) -> None:
        """Wake at ``at`` (a sleep or retry this process scheduled)."""
        ...


@dataclass(eq=False)
class Runtime:
    """One engine's shared services, settings and in-flight registry.

    Attributes:
        io: The store, as the engine calls it (counted under a settling clock).
        clock: The time source.
        plugins: The typed plugin relay.
        events: Lifecycle events out.
        watchers: Local ``wait_for`` callers.
        counters: The engine's counters.
        tracker: Store calls and thread handlers in flight (for fake clocks).
        registry: Registered workflow specs.
        worker_id: This engine's lease owner name.
        lease: Seconds a claim, commit or heartbeat holds a run.
        max_concurrent_runs: Runs executed here at once.
        max_recoveries: Takeovers after which a run is dead-lettered.
        max_heartbeat_failures: Failed renewals in a row that stop a step.
        tenant_id: The tenant every read and write is scoped to, if any.
        retention: How long finished runs are kept (swept by started workers).
        inflight: Runs executing in this process, by id.
        worker: The started worker loop's signals (``None`` on a client engine).
        stopping: Set by shutdown: no new claims, local runs release at their next commit.
        closed: The engine was shut down.
    """

    io: Store
    clock: Clock
    plugins: PluginRelay
    events: Emitter
    watchers: Watchers
    counters: EngineStats
    tracker: IOTracker
    registry: Registry
    worker_id: str
    lease: float
    max_concurrent_runs: int
    max_recoveries: int
    max_heartbeat_failures: int
    tenant_id: str | None
    retention: Retention | None = None
    inflight: dict[str, RunState] = field(default_factory=dict)
    worker: WorkerSignals | None = None
    stopping: bool = False
    closed: bool = False

    def __post_init__(self) -> None:
        self.registry.limits_supported = supports_limits(self.io)

    @property
    def started(self) -> bool:
        """True while the worker loop runs."""
        return self.worker is not None and not self.stopping

    @property
    def free_slots(self) -> int:
        """How many more runs this worker may execute now."""
        return self.max_concurrent_runs - len(self.inflight)

    def can_take_locally(self) -> bool:
        """Whether a run made runnable here may be leased to this worker at once."""
        return self.started and self.free_slots > 0

    def lease_value(self, now: datetime) -> dict[str, Any]:
        """A lease document for this worker, from ``now``."""
        return P.lease_value(self.worker_id, now, self.lease)

    def local_lease(self, run: WorkflowRun) -> dict[str, Any] | None:
        """A lease for a client write that makes ``run`` runnable, when this worker can run it."""
        if (
            run.paused
            or run.is_limited  # only the store's claim_limited may lease it
            or not self.can_take_locally()
            or self.registry.for_run(run) is None
        ):
            return None
        return self.lease_value(self.clock.now())

    def wake(self) -> None:
        """Make the worker loop (if any) claim now."""
        if self.worker is not None:
            self.worker.wake()

    def note_due(self, run: WorkflowRun) -> None:
        """Remember a local run's next due time so the worker wakes for it."""
        if self.worker is not None and run.next_run_at is not None and not run.paused:
            self.worker.add_timer(run.next_run_at)

    def finished(self, state: RunState) -> None:
        """A local drive ended: free its slot, wake its watchers and the worker."""
        if self.inflight.get(state.run.id) is state:
            del self.inflight[state.run.id]
        self.watchers.notify(state.run.id)
        self.wake()
