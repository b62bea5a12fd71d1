"""``Client``: the parts of one engine, built once over its runtime and bundled.

Top of the runtime: imports the parts. :meth:`Client.assemble` is the one
place that knows which part needs which; ``Workflow`` and ``Runs`` hold a
client instead of the engine, and the engine supplies the two lifecycle
calls that are its own (autostart and shutdown).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from streamline_core._runtime.children import Children
from streamline_core._runtime.control import Control
from streamline_core._runtime.creation import Creation
from streamline_core._runtime.delivery import Delivery
from streamline_core._runtime.dispatch import Dispatcher
from streamline_core._runtime.executor import Executor
from streamline_core._runtime.heartbeats import Heartbeats
from streamline_core._runtime.migration import Migration
from streamline_core._runtime.outcomes import Outcomes
from streamline_core._runtime.reads import Reads
from streamline_core._runtime.runtime import Runtime
from streamline_core._runtime.sweeper import Sweeper
from streamline_core._runtime.triggers import Triggers
from streamline_core._runtime.worker import Worker

__all__ = ["Client"]


@dataclass(frozen=True, eq=False)
class Client:
    """One engine's client operations.

    Attributes:
        rt: The runtime (settings such as the tenant scope).
        reads: Scoped reads and queries.
        creation: New runs.
        control: Resume, cancel, pause, rewind.
        delivery: Events to runs.
        dispatcher: Local execution (``execute``, claimed runs, drain).
        heartbeats: Lease renewal of the runs in flight.
        sweeper: Retention deletes (``runs.prune``).
        migration: Version moves (``migrate_run``, ``runs.migrate``) and forks.
        autostart: Starts the engine's worker on the first ``start`` when it is
            configured to (a no-op otherwise).
        shutdown: The engine's shutdown.
    """

    rt: Runtime
    reads: Reads
    creation: Creation
    control: Control
    delivery: Delivery
    dispatcher: Dispatcher
    heartbeats: Heartbeats
    sweeper: Sweeper
    migration: Migration
    autostart: Callable[[], Awaitable[None]]
    shutdown: Callable[[], Awaitable[None]]

    @classmethod
    def assemble(
        cls,
        rt: Runtime,
        *,
        autostart: Callable[[], Awaitable[None]],
        shutdown: Callable[[], Awaitable[None]],
    ) -> Client:
        """Build every part over ``rt``, each given exactly the parts it calls."""
        _judge_leases_by_engine_clock(rt)
        reads = Reads(rt)
        heartbeats = Heartbeats(rt)
        outcomes = Outcomes(rt)
        children = Children(rt, outcomes)
        executor = Executor(rt, outcomes, heartbeats.beat_now, children)
        dispatcher = Dispatcher(rt, reads, executor, heartbeats)
        control = Control(rt, reads, dispatcher)
        creation = Creation(rt, dispatcher)
        children.bind(
            create=creation.create,
            cancel=lambda run_id, reason: control.cancel(run_id, reason, None),
            after_write=dispatcher.after_client_write,
        )
        rt.events.on_end = children.on_end
        triggers = Triggers(rt, creation, control)
        return cls(
            rt=rt,
            reads=reads,
            creation=creation,
            control=control,
            delivery=Delivery(rt, reads, control, dispatcher, triggers),
            dispatcher=dispatcher,
            heartbeats=heartbeats,
            sweeper=Sweeper(rt),
            migration=Migration(rt, reads, dispatcher, creation),
            autostart=autostart,
            shutdown=shutdown,
        )

    def abandon(self, worker: Worker | None) -> None:
        """Stop every task of this engine at once, keeping its leases: a simulated crash.

        For crash tests only (the conformance suite's crash property): nothing
        is released or committed, as when the process dies.
        """
        tasks = self.dispatcher.abandon() + self.heartbeats.tasks()
        if worker is not None:
            tasks.extend(worker.abandon())
        current = asyncio.current_task()
        for task in tasks:
            if task is not current and not task.done():
                task.cancel()


def _judge_leases_by_engine_clock(rt: Runtime) -> None:
    """Under a clock that moves only when told (``FakeClock``), have a store that
    judges lease expiry by its database's clock judge it by the engine's ``now``:
    the database's clock would ignore the fake time (Store protocol, ``lease_clock``)."""
    use_caller_clock = getattr(rt.io, "use_caller_clock", None)
    if (
        callable(getattr(rt.clock, "subscribe", None))
        and callable(use_caller_clock)
        and not inspect.iscoroutinefunction(use_caller_clock)
    ):
        use_caller_clock()
