"""``Jumps``: ``ctx.goto`` — the step ends ``skipped`` and the run continues at another step.

Parts layer: imports the runtime, the commit loop and the step outcomes. The
jump is one commit (:func:`~streamline_core._flow_patches.goto_step`); the
jump past the workflow's ``max_gotos`` fails the run instead (``STEP_FAILED``,
through the ordinary failure path, so a saga compensates it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamline_core._flow_patches as F
from streamline_core._runtime.commits import Patch, Refused, commit
from streamline_core._runtime.inflight import RunState
from streamline_core._runtime.outcomes import Outcomes, goes_on
from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import NonRetriableError
from streamline_core.run import WorkflowRun

__all__ = ["Jumps"]


class Jumps:
    """Commits ``ctx.goto`` jumps for one runtime."""

    def __init__(self, rt: Runtime, outcomes: Outcomes) -> None:
        self._rt = rt
        self._outcomes = outcomes

    async def jump(
        self,
        state: RunState,
        idx: int,
        target_id: str,
        changes: dict[str, Any],
        started_at: datetime,
        attempt: int,
    ) -> bool:
        """Commit the jump from step ``idx`` to ``target_id``. True to go on executing."""
        rt = self._rt
        run = state.run
        step_id = run.steps[idx].step_id
        target = run.step_index(target_id)
        limit = state.spec.max_gotos
        if run.gotos >= limit:
            error = NonRetriableError(
                f"step {step_id!r}: ctx.goto({target_id!r}) would be jump {run.gotos + 1} of "
                f"this run; the workflow allows max_gotos={limit}",
                run_id=run.id,
                step_id=step_id,
            )
            return await self._outcomes.failed(state, idx, error, started_at, attempt)

        def build(r: WorkflowRun) -> Patch:
            now = rt.clock.now()
            keep = not (r.paused or rt.stopping)
            return F.goto_step(
                r,
                idx,
                target,
                now=now,
                started_at=started_at,
                attempts=attempt,
                context_changes=changes,
                lease=rt.lease_value(now) if keep else None,
                keep_running=keep,
            )

        try:
            run = await commit(rt, state, build, step_id)
        except Refused as refused:
            return await self._outcomes.refused(state, idx, refused, started_at, attempt)
        if rt.events.listens("step:skipped"):
            await rt.events.emit("step:skipped", run=run, step_id=step_id, data={"goto": target_id})
        return goes_on(run)
