"""``engine.sync``: the engine's client operations as plain blocking calls, for sync code.

Façade layer: imports the ``Workflow`` and ``Runs`` façades and the loop
thread. Every call runs on the engine's own background event loop (a daemon
thread), so a Flask or Django view, a management command or a script can
start, query and signal runs without ``asyncio``::

    run = engine.sync.start("checkout", {"order": 7})
    engine.sync.resume(run_id, {"approved": True})

An engine used through ``engine.sync`` keeps its store on that background
loop: use it only through ``engine.sync`` (a process that also has async code
builds a second engine for it). Calls made from inside a running event loop
are refused; await the engine's own methods there.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any

from streamline_core._loop_thread import LoopThread
from streamline_core.run import RunPage, RunStatus, WorkflowRun
from streamline_core.runs import Runs
from streamline_core.workflow import Workflow

__all__ = ["SyncEngine"]


class SyncEngine:
    """Blocking twins of the engine's client calls (``engine.sync``)."""

    def __init__(
        self,
        runner: LoopThread,
        runs: Runs,
        workflow: Callable[[str], Workflow],
        emit_event: Callable[..., Coroutine[Any, Any, int]],
        start_worker: Callable[[], Coroutine[Any, Any, None]],
        shutdown: Callable[[float], Coroutine[Any, Any, None]],
    ) -> None:
        self._runner = runner
        self._runs = runs
        self._workflow = workflow
        self._emit_event = emit_event
        self._start_worker = start_worker
        self._shutdown = shutdown

    def _wf(self, workflow: str | Workflow) -> Workflow:
        return workflow if isinstance(workflow, Workflow) else self._workflow(workflow)

    def start(
        self,
        workflow: str | Workflow,
        input: Any = None,
        *,
        meta: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        priority: int = 0,
        tenant_id: str | None = None,
        start_at: datetime | None = None,
    ) -> WorkflowRun:
        """``Workflow.start`` of ``workflow`` (a registered name or the workflow itself)."""
        wf = self._wf(workflow)
        return self._runner.run(
            wf.start(
                input,
                meta=meta,
                idempotency_key=idempotency_key,
                priority=priority,
                tenant_id=tenant_id,
                start_at=start_at,
            )
        )

    def get(self, run_id: str) -> WorkflowRun | None:
        """``engine.runs.get``."""
        return self._runner.run(self._runs.get(run_id))

    def wait_for(
        self,
        workflow: str | Workflow,
        run_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 1.0,
    ) -> WorkflowRun:
        """``Workflow.wait_for``: block until the run ends (``TimeoutError`` after ``timeout``)."""
        wf = self._wf(workflow)
        return self._runner.run(wf.wait_for(run_id, timeout=timeout, poll_interval=poll_interval))

    def resume(self, run_id: str, payload: Any = None) -> WorkflowRun:
        """``engine.runs.resume``."""
        return self._runner.run(self._runs.resume(run_id, payload))

    def cancel(self, run_id: str, reason: str | None = None) -> WorkflowRun:
        """``engine.runs.cancel``."""
        return self._runner.run(self._runs.cancel(run_id, reason))

    def emit_event(
        self,
        name: str,
        data: Any = None,
        *,
        run_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """``engine.emit_event``: how many runs it resumed."""
        return self._runner.run(
            self._emit_event(name, data, run_id=run_id, idempotency_key=idempotency_key)
        )

    def find(
        self,
        *,
        workflow_id: str | Sequence[str] | None = None,
        status: RunStatus | str | Sequence[RunStatus | str] | None = None,
        meta: Mapping[str, Any] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """``engine.runs.find`` (the common filters)."""
        return self._runner.run(
            self._runs.find(
                workflow_id=workflow_id, status=status, meta=meta, limit=limit, cursor=cursor
            )
        )

    def start_worker(self) -> None:
        """Start the engine's worker on the background loop (scripts, tests; not web views)."""
        self._runner.run(self._start_worker())

    def close(self, timeout: float = 30.0) -> None:
        """Shut the engine down (as ``engine.shutdown``) and stop the background loop."""
        try:
            self._runner.run(self._shutdown(timeout))
        finally:
            self._runner.stop()
