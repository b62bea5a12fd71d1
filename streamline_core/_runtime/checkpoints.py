"""``Checkpoints``: a step's progress (``ctx.checkpoint``, ``ctx.map``) written durably.

Parts layer: imports the runtime and the commit loop. A checkpoint is a
write like a step's commit: fenced by this worker's lease and dropped when
the run's cursor left the step (a rewind, a cancel). A write that cannot
land stops the handler with :class:`~streamline_core.errors.LeaseLostSignal`,
which user code cannot catch by accident. Each write also refreshes the
lease, as a commit does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamline_core._flow_patches as F
from streamline_core._runtime.commits import Dropped, Patch, Refused, commit
from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import LeaseLostSignal, ValidationError
from streamline_core.run import WorkflowRun

__all__ = ["Checkpoints"]


class Checkpoints:
    """Checkpoint writes for the steps executing in one runtime."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def write(self, run_id: str, step_id: str, changes: Mapping[str, Any]) -> None:
        """Write ``changes`` under ``steps.<step>.checkpoint`` of a run executing here.

        Raises:
            LeaseLostSignal: the run is no longer this worker's, or its cursor moved.
            ValidationError: the store refused what the checkpoint holds.
        """
        rt = self._rt
        state = rt.inflight.get(run_id)
        if state is None:
            raise LeaseLostSignal(f"run {run_id!r} is not executing here")
        idx = state.run.step_index(step_id)

        def build(r: WorkflowRun) -> Patch:
            now = rt.clock.now()
            return F.checkpoint_patch(
                idx, changes, now=now, lease_expires=rt.lease_value(now)["expires_at"]
            )

        try:
            await commit(rt, state, build, step_id)
        except Dropped:
            raise LeaseLostSignal(
                f"run {run_id!r} step {step_id!r}: the checkpoint cannot be written, the run "
                "is no longer this worker's to change"
            ) from None
        except Refused as refused:
            raise ValidationError(
                f"step {step_id!r}: the store refused its checkpoint: {refused.error}",
                run_id=run_id,
                step_id=step_id,
            ) from None
