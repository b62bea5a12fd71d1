"""``Reads``: scoped reads of runs — get, require, queries, and waiting for a run to end.

Parts layer, bottom: imports the runtime. A run of another tenant (on a
tenant engine) or of another workflow (through a ``Workflow``) is "not found".
"""

from __future__ import annotations

import asyncio

from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import ValidationError, WorkflowNotFoundError
from streamline_core.run import RunPage, RunStatus, WorkflowRun
from streamline_core.store import RunQuery

__all__ = ["Reads"]


class Reads:
    """Scoped reads over one runtime."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def in_scope(self, run: WorkflowRun | None, workflow_id: str | None = None) -> bool:
        """Whether ``run`` exists and is visible to this engine (and this workflow)."""
        if run is None:
            return False
        tenant = self._rt.tenant_id
        if tenant is not None and run.tenant_id != tenant:
            return False
        return workflow_id is None or run.workflow_id == workflow_id

    async def get(self, run_id: str, workflow_id: str | None = None) -> WorkflowRun | None:
        """The run, or ``None`` when unknown or out of scope."""
        run = await self._rt.io.get(run_id)
        return run if self.in_scope(run, workflow_id) else None

    async def require(self, run_id: str, workflow_id: str | None = None) -> WorkflowRun:
        """The run.

        Raises:
            WorkflowNotFoundError: unknown or out of scope.
        """
        run = await self.get(run_id, workflow_id)
        if run is None:
            raise WorkflowNotFoundError(f"run {run_id!r} not found", run_id=run_id)
        return run

    async def find(self, query: RunQuery) -> RunPage:
        """One page of runs (a bad cursor is a ``ValidationError``)."""
        try:
            return await self._rt.io.find(query)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    async def count(self, query: RunQuery) -> int:
        """How many runs match."""
        return await self._rt.io.count(query)

    async def delete(self, query: RunQuery) -> int:
        """Delete the matching runs; how many went."""
        return await self._rt.io.delete(query)

    def _no_worker_hint(self, run: WorkflowRun) -> str:
        """Why a due run nobody claimed is still waiting: most often, no worker runs."""
        now = self._rt.clock.now()
        unclaimed = run.lease is None or run.lease.expires_at <= now
        due = run.next_run_at is not None and run.next_run_at <= now
        if run.paused:
            return "; it is paused (unpause it to let a worker claim it)"
        if not (unclaimed and due):
            return ""
        here = (
            "this engine is a worker"
            if self._rt.started
            else "this engine is a client (not started)"
        )
        return (
            f"; it is due but no worker has claimed it ({here}): start a worker with "
            "`async with engine`, `await engine.start()` or `streamline worker module:engine` "
            "(in tests, the `worker_engine` fixture), registering the same workflow"
        )

    async def wait_for(
        self,
        run_id: str,
        workflow_id: str | None,
        timeout: float | None,
        poll_interval: float,
        suspended: bool = False,
    ) -> WorkflowRun:
        """Re-read the run until it ends (or suspends, with ``suspended``); real seconds.

        Raises:
            WorkflowNotFoundError: unknown or out of scope.
            TimeoutError: still active after ``timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            run = await self.require(run_id, workflow_id)
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
                        + self._no_worker_hint(run)
                    )
                wait_s = min(wait_s, left)
            await self._rt.watchers.watch(run_id, wait_s)
