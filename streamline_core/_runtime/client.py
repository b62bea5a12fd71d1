"""``Client``: the parts the façades call, bundled once per engine.

Top of the runtime: imports the parts. ``Workflow`` and ``Runs`` hold a
client instead of the engine; the engine builds it and supplies the two
lifecycle calls that are its own (autostart and shutdown).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from streamline_core._runtime.control import Control
from streamline_core._runtime.creation import Creation
from streamline_core._runtime.delivery import Delivery
from streamline_core._runtime.dispatch import Dispatcher
from streamline_core._runtime.reads import Reads
from streamline_core._runtime.runtime import Runtime

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
        dispatcher: Local execution (``execute``).
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
    autostart: Callable[[], Awaitable[None]]
    shutdown: Callable[[], Awaitable[None]]
