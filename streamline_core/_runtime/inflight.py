"""``RunState``: one run executing in this process, and how it is interrupted.

Bottom of the runtime: imports the model, the step context and the workflow spec.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

from streamline_core.context import StepContext
from streamline_core.run import WorkflowRun
from streamline_core.workflow_spec import WorkflowSpec

__all__ = ["RunState"]


@dataclass(eq=False)
class RunState:
    """An in-flight run in this process."""

    run: WorkflowRun
    spec: WorkflowSpec
    lease_expires: datetime
    task: asyncio.Task[None] | None = None
    ctx: StepContext | None = None
    in_handler: bool = False
    cancel_reason: str | None = None
    heartbeat_failures: int = 0
    epoch: int = -1
    """The run's epoch when this drive began: its outcomes land only in that epoch."""

    done: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.epoch < 0:
            self.epoch = self.run.epoch

    def interrupt(self, reason: str) -> None:
        """Stop the executing handler (cancel, lease lost, timeout, rewind)."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        if self.ctx is not None and reason != "timeout":
            self.ctx.signal.set()
        if self.in_handler and self.task is not None and not self.task.done():
            self.task.cancel()
