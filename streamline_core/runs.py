"""``engine.runs``: typed queries over an engine's runs (tenant-scoped when the engine is).

Façade layer: imports the runtime's client. It checks arguments and builds
the typed ``RunQuery``; the client's reads run it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from streamline_core._runtime.client import Client
from streamline_core.errors import ValidationError
from streamline_core.run import TERMINAL_STATUSES, RunPage, RunStatus, WorkflowRun
from streamline_core.store import RunQuery, SortKey

__all__ = ["Runs"]

_SORTS = ("created_at", "-created_at", "updated_at", "-updated_at")


def _statuses(status: RunStatus | str | Sequence[RunStatus | str] | None) -> Any:
    if status is None:
        return None
    try:
        if isinstance(status, str):
            return RunStatus(status)
        return tuple(RunStatus(s) for s in status)
    except ValueError:
        raise ValidationError(
            f"unknown status {status!r}; expected {[s.value for s in RunStatus]}"
        ) from None


class Runs:
    """Queries over runs. Never accepts raw backend query documents."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _tenant(self, tenant_id: str | None) -> str | None:
        scoped = self._client.rt.tenant_id
        if scoped is not None:
            if tenant_id is not None and tenant_id != scoped:
                raise ValidationError(f"this engine is scoped to tenant {scoped!r}")
            return scoped
        return tenant_id

    def _query(
        self,
        *,
        workflow_id: str | Sequence[str] | None,
        status: Any,
        tenant_id: str | None,
        meta: Mapping[str, Any] | None,
        context: Mapping[str, Any] | None,
        created_after: datetime | None,
        created_before: datetime | None,
        sort: str = "-created_at",
        limit: int | None = 50,
        cursor: str | None = None,
    ) -> RunQuery:
        if sort not in _SORTS:
            raise ValidationError(f"sort must be one of {_SORTS}, got {sort!r}")
        if limit is not None and (isinstance(limit, bool) or not 1 <= limit <= 10_000):
            raise ValidationError(f"limit must be between 1 and 10000, got {limit!r}")
        for name, dt in (("created_after", created_after), ("created_before", created_before)):
            if dt is not None and dt.tzinfo is None:
                raise ValidationError(f"{name} must be timezone-aware")
        sort_key = cast(SortKey, sort)
        return RunQuery(
            workflow_id=workflow_id,
            status=_statuses(status),
            tenant_id=self._tenant(tenant_id),
            meta=dict(meta) if meta else None,
            context=dict(context) if context else None,
            created_after=created_after,
            created_before=created_before,
            sort=sort_key,
            limit=limit,
            cursor=cursor,
        )

    async def get(self, run_id: str) -> WorkflowRun | None:
        """The run, or ``None`` (also for another tenant's run)."""
        return await self._client.reads.get(run_id)

    async def resume(self, run_id: str, payload: Any = None) -> WorkflowRun:
        """Resume any workflow's run waiting on ``ctx.wait`` (for admin tools).

        Raises:
            WorkflowNotFoundError: unknown run.
            InvalidStateError: the run is not waiting on ``ctx.wait``.
        """
        return await self._client.control.resume(run_id, payload, None)

    async def cancel(self, run_id: str, reason: str | None = None) -> WorkflowRun:
        """Cancel any workflow's active run (for admin tools).

        Raises:
            WorkflowNotFoundError: unknown run.
            InvalidStateError: the run already ended.
        """
        return await self._client.control.cancel(run_id, reason, None)

    async def find(
        self,
        *,
        workflow_id: str | Sequence[str] | None = None,
        status: RunStatus | str | Sequence[RunStatus | str] | None = None,
        tenant_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        sort: str = "-created_at",
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """One page of runs; pass ``page.next_cursor`` back as ``cursor`` for the next.

        Args:
            workflow_id: One workflow name or several.
            status: One status or several.
            tenant_id: Tenant filter (forced to the engine's tenant when scoped).
            meta: Equality on ``meta.<key>``.
            context: Equality on ``context.<key>``.
            created_after: Runs created at or after this (aware) instant.
            created_before: Runs created before this instant.
            sort: ``"-created_at"`` (default), ``"created_at"``, ``"-updated_at"`` or
                ``"updated_at"``.
            limit: Page size (1..10000).
            cursor: ``next_cursor`` of the previous page.
        """
        query = self._query(
            workflow_id=workflow_id,
            status=status,
            tenant_id=tenant_id,
            meta=meta,
            context=context,
            created_after=created_after,
            created_before=created_before,
            sort=sort,
            limit=limit,
            cursor=cursor,
        )
        return await self._client.reads.find(query)

    async def count(
        self,
        *,
        workflow_id: str | Sequence[str] | None = None,
        status: RunStatus | str | Sequence[RunStatus | str] | None = None,
        tenant_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> int:
        """How many runs match (same filters as :meth:`find`)."""
        query = self._query(
            workflow_id=workflow_id,
            status=status,
            tenant_id=tenant_id,
            meta=meta,
            context=context,
            created_after=created_after,
            created_before=created_before,
            limit=None,
        )
        return await self._client.reads.count(query)

    async def delete(
        self,
        *,
        status: RunStatus | str | Sequence[RunStatus | str],
        updated_before: datetime,
        workflow_id: str | Sequence[str] | None = None,
        tenant_id: str | None = None,
    ) -> int:
        """Delete finished runs last updated before ``updated_before`` (cleanup).

        Only terminal statuses (``done``, ``failed``, ``cancelled``) may be
        deleted: removing an active run under a worker would lose work.
        """
        statuses = _statuses(status)
        listed = (statuses,) if isinstance(statuses, RunStatus) else statuses
        bad = [s.value for s in listed if s not in TERMINAL_STATUSES]
        if bad:
            raise ValidationError(f"only finished runs can be deleted, not {bad}")
        if updated_before.tzinfo is None:
            raise ValidationError("updated_before must be timezone-aware")
        query = RunQuery(
            workflow_id=workflow_id,
            status=listed,
            tenant_id=self._tenant(tenant_id),
            updated_before=updated_before,
            limit=None,
        )
        return await self._client.reads.delete(query)
