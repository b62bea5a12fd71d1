"""``engine.runs``: typed queries over an engine's runs (tenant-scoped when the engine is).

Façade layer: imports the runtime's client. It checks arguments and builds
the typed ``RunQuery``; the client's reads run it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import streamline_core._arguments as A
from streamline_core._durations import seconds
from streamline_core._json import Unstorable, to_json_value
from streamline_core._runtime.client import Client
from streamline_core.errors import ValidationError
from streamline_core.run import TERMINAL_STATUSES, RunPage, RunStatus, WorkflowRun
from streamline_core.store import RunQuery, SortKey

__all__ = ["Runs"]

_SORTS = ("created_at", "-created_at", "updated_at", "-updated_at")


def _statuses(status: RunStatus | str | Sequence[RunStatus | str] | None) -> Any:
    if status is None:
        return None
    if not isinstance(status, (str, Sequence)) or isinstance(status, (bytes, bytearray)):
        raise ValidationError(
            f"status must be a status or a list of statuses, got {type(status).__name__}"
        )
    try:
        if isinstance(status, str):
            return RunStatus(status)
        return tuple(RunStatus(s) for s in status)
    except (ValueError, TypeError):
        raise ValidationError(
            f"unknown status {status!r:.80}; expected {[s.value for s in RunStatus]}"
        ) from None


def _filter(values: Mapping[str, Any] | None, what: str) -> dict[str, Any] | None:
    """Field-equality filters: string keys, JSON values (matched as values, never operators)."""
    if not A.mapping(values, what):
        return None
    assert values is not None
    try:
        out: dict[str, Any] = to_json_value(dict(values), what)
    except Unstorable as exc:
        raise ValidationError(f"{what} filter is not JSON-compatible: {exc}") from None
    return out


def _finished(
    status: RunStatus | str | Sequence[RunStatus | str], verb: str
) -> tuple[RunStatus, ...]:
    """``status`` as finished statuses (at least one), for ``delete`` and ``prune``."""
    statuses = _statuses(status)
    listed = (statuses,) if isinstance(statuses, RunStatus) else tuple(statuses or ())
    if not listed:
        raise ValidationError(f"status must name at least one finished status to be {verb}")
    bad = [s.value for s in listed if s not in TERMINAL_STATUSES]
    if bad:
        raise ValidationError(f"only finished runs can be {verb}, not {bad}")
    return listed


class Runs:
    """Queries over runs. Never accepts raw backend query documents."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _tenant(self, tenant_id: str | None) -> str | None:
        A.optional_text(tenant_id, "tenant_id")
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
        parent_run_id: str | None = None,
        sort: str = "-created_at",
        limit: int | None = 50,
        cursor: str | None = None,
    ) -> RunQuery:
        if not isinstance(sort, str) or sort not in _SORTS:
            raise ValidationError(f"sort must be one of {_SORTS}, got {sort!r:.60}")
        if limit is not None:
            A.integer(limit, "limit", low=1, high=10_000)
        A.optional_aware_datetime(created_after, "created_after")
        A.optional_aware_datetime(created_before, "created_before")
        if cursor is not None and not isinstance(cursor, str):
            raise ValidationError(f"cursor must be a string, got {type(cursor).__name__}")
        sort_key = cast(SortKey, sort)
        return RunQuery(
            workflow_id=A.names(workflow_id, "workflow_id"),
            status=_statuses(status),
            tenant_id=self._tenant(tenant_id),
            meta=_filter(meta, "meta"),
            context=_filter(context, "context"),
            created_after=created_after,
            created_before=created_before,
            parent_run_id=None
            if parent_run_id is None
            else A.run_id(parent_run_id, "parent_run_id"),
            sort=sort_key,
            limit=limit,
            cursor=cursor,
        )

    async def get(self, run_id: str) -> WorkflowRun | None:
        """The run, or ``None`` (also for another tenant's run)."""
        return await self._client.reads.get(A.run_id(run_id))

    async def resume(self, run_id: str, payload: Any = None) -> WorkflowRun:
        """Resume any workflow's run waiting on ``ctx.wait`` (for admin tools).

        Raises:
            WorkflowNotFoundError: unknown run.
            InvalidStateError: the run is not waiting on ``ctx.wait``.
        """
        return await self._client.control.resume(A.run_id(run_id), payload, None)

    async def cancel(self, run_id: str, reason: str | None = None) -> WorkflowRun:
        """Cancel any workflow's active run (for admin tools).

        Raises:
            WorkflowNotFoundError: unknown run.
            InvalidStateError: the run already ended.
        """
        return await self._client.control.cancel(
            A.run_id(run_id),
            A.reason(reason),
            None,
        )

    async def pause(self, run_id: str) -> WorkflowRun:
        """Pause any workflow's active run (for admin tools): it is not claimed until unpaused.

        Raises:
            WorkflowNotFoundError: unknown run.
            InvalidStateError: the run already ended.
        """
        return await self._client.control.set_paused(A.run_id(run_id), True, None)

    async def unpause(self, run_id: str) -> WorkflowRun:
        """Let any workflow's paused run be claimed again (for admin tools)."""
        return await self._client.control.set_paused(A.run_id(run_id), False, None)

    async def rewind_to(self, run_id: str, step_id: str) -> WorkflowRun:
        """Re-run any workflow's run from ``step_id`` (for admin tools).

        Raises:
            WorkflowNotFoundError: unknown run.
            StepNotFoundError: the run has no such step.
        """
        return await self._client.control.rewind(A.run_id(run_id), A.text(step_id, "step_id"), None)

    async def migrate(
        self,
        *,
        workflow_id: str,
        from_version: str,
        to_version: str,
        step_map: Mapping[str, str] | None = None,
    ) -> int:
        """Move every active run of ``workflow_id`` on ``from_version`` onto ``to_version``.

        Each run moves as :meth:`Engine.migrate_run <streamline_core.Engine.migrate_run>`
        moves one (one compare-and-set each), paging through the runs. Runs a
        worker holds now (a live lease) are skipped, and so are runs whose
        current step has no counterpart in ``to_version``: they stay on
        ``from_version``; count them with ``find`` and move them one by one.

        Args:
            workflow_id: The workflow.
            from_version: The version to move runs off.
            to_version: A version of the workflow registered on this engine.
            step_map: Old step id -> new step id, for renamed steps.

        Returns:
            How many runs moved.

        Raises:
            WorkflowNotFoundError: ``to_version`` is not registered here.
            ValidationError: a bad ``step_map`` or the same version twice.
        """
        return await self._client.migration.migrate_many(
            workflow_id, from_version, to_version, step_map
        )

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
        parent_run_id: str | None = None,
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
            parent_run_id: Child runs of this run.
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
            parent_run_id=parent_run_id,
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
        parent_run_id: str | None = None,
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
            parent_run_id=parent_run_id,
            limit=None,
        )
        return await self._client.reads.count(query)

    async def delete(
        self,
        *,
        status: RunStatus | str | Sequence[RunStatus | str],
        updated_before: datetime | None = None,
        workflow_id: str | Sequence[str] | None = None,
        tenant_id: str | None = None,
        run_ids: Sequence[str] | None = None,
    ) -> int:
        """Delete finished runs last updated before ``updated_before``, or the ones named.

        Only terminal statuses (``done``, ``failed``, ``cancelled``) may be
        deleted: removing an active run under a worker would lose work. Give
        ``updated_before``, ``run_ids`` or both; an active run named in
        ``run_ids`` is left alone (it does not match ``status``).
        """
        listed = _finished(status, "deleted")
        A.optional_aware_datetime(updated_before, "updated_before")
        ids = None if run_ids is None else A.names(run_ids, "run_ids")
        if updated_before is None and not ids:
            raise ValidationError("delete needs updated_before or run_ids (at least one id)")
        query = RunQuery(
            workflow_id=A.names(workflow_id, "workflow_id"),
            status=listed,
            tenant_id=self._tenant(tenant_id),
            updated_before=updated_before,
            run_ids=(ids,) if isinstance(ids, str) else ids,
            limit=None,
        )
        return await self._client.reads.delete(query)

    async def prune(
        self,
        *,
        status: RunStatus | str | Sequence[RunStatus | str],
        older_than: float | timedelta,
        dry_run: bool = False,
    ) -> int:
        """Delete finished runs that ended more than ``older_than`` ago, archiving them first.

        What a started worker with ``Engine(retention=...)`` does on its own,
        now: batches go to the ``streamline_archive`` hook, then are deleted;
        an archive plugin that raises keeps its batch (and stops the prune).
        Scoped to this engine's tenant, if it has one.

        Args:
            status: ``done``, ``failed`` and/or ``cancelled``.
            older_than: Age in seconds (or a ``timedelta``), by ``ended_at``.
            dry_run: Only count what would be deleted.

        Returns:
            How many runs were deleted (or would be, with ``dry_run``).

        Raises:
            ValidationError: An active status, or a negative age.
        """
        listed = _finished(status, "pruned")
        age = seconds(older_than, "older_than")
        if age is None or age < 0:
            raise ValidationError(f"older_than must be a duration >= 0, got {older_than!r}")
        total = 0
        for s in listed:
            total += await self._client.sweeper.prune(s, age, dry_run=dry_run)
        return total
