"""``Triggers``: what a broadcast event does to workflows — ``cancel_on`` and ``trigger``.

Parts layer: imports the runtime, creation and control; delivery calls it
after a broadcast has resumed its waiting runs. Both go through the normal
paths: ``cancel_on`` cancels with :meth:`Control.cancel` (children cascade,
a local step is interrupted), a ``trigger`` starts with
:meth:`Creation.create` (tenant scope, input validation, idempotency,
debounce). Only the workflows registered on the emitting engine are known
here, so an engine that emits must register them (a web process and its
workers share one module of definitions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamline_core._runtime.control import Control
from streamline_core._runtime.creation import Creation
from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import (
    InvalidStateError,
    StoreUnavailableError,
    WorkflowError,
    WorkflowNotFoundError,
)
from streamline_core.run import ACTIVE_STATUSES
from streamline_core.store import RunQuery

__all__ = ["Triggers"]

_PAGE = 200


class Triggers:
    """``cancel_on`` and ``trigger`` of the workflows registered on one runtime."""

    def __init__(self, rt: Runtime, creation: Creation, control: Control) -> None:
        self._rt = rt
        self._creation = creation
        self._control = control

    async def on_broadcast(self, name: str, data: Any, idempotency_key: str | None) -> None:
        """Cancel the runs ``cancel_on`` names, then start the runs ``trigger`` names.

        Cancels come first, so a run this very event starts is never cancelled
        by it. A trigger that cannot start (bad input, a failing context
        factory) is reported as an ``engine:error`` event and the others still
        start; a store that is unavailable is raised after every trigger was
        tried (re-emitting with the same ``idempotency_key`` is then safe).
        """
        await self._cancel_matching(name, data)
        await self._start_triggered(name, data, idempotency_key)

    async def _cancel_matching(self, name: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            return
        targets: dict[tuple[str, str], set[str]] = {}
        for spec in self._rt.registry.specs():
            field = (spec.cancel_on or {}).get(name)
            if field is not None and field in data:
                targets.setdefault((spec.name, field), set()).add(spec.version)
        reason = f"cancel_on event {name!r}"
        for (workflow_id, field), versions in targets.items():
            cursor: str | None = None
            while True:  # keyset pages: runs cancelled meanwhile never shift the cursor
                page = await self._rt.io.find(
                    RunQuery(
                        workflow_id=workflow_id,
                        status=tuple(ACTIVE_STATUSES),
                        tenant_id=self._rt.tenant_id,
                        context={field: data[field]},
                        sort="created_at",
                        limit=_PAGE,
                        cursor=cursor,
                    )
                )
                for run in page.items:
                    if run.workflow_version not in versions:
                        continue
                    try:
                        await self._control.cancel(run.id, reason, workflow_id)
                    except (InvalidStateError, WorkflowNotFoundError):
                        pass  # ended or deleted meanwhile
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor

    async def _start_triggered(self, name: str, data: Any, idempotency_key: str | None) -> None:
        registry = self._rt.registry
        unavailable: StoreUnavailableError | None = None
        for workflow_id in sorted(registry.names):
            spec = registry.get(workflow_id)  # the latest version decides
            if spec.trigger != name:
                continue
            try:
                await self._creation.create(
                    spec,
                    data,
                    meta={"trigger_event": name},
                    idempotency_key=idempotency_key,
                    priority=0,
                    tenant_id=self._rt.tenant_id,
                    start_at=None,
                )
            except WorkflowError as exc:
                if isinstance(exc, StoreUnavailableError) and unavailable is None:
                    unavailable = exc
                await self._rt.events.emit(
                    "engine:error",
                    error=exc,
                    workflow_id=spec.name,
                    data={"trigger": name, "workflow": spec.name},
                )
        if unavailable is not None:
            raise unavailable
