"""The JSON API: runs, events, workflows, schedules, the webhook route and a health check.

Every route is a thin call into the engine's public API (``engine.runs``,
``engine.schedules``, ``engine.emit_event``, ``engine.resume_hook``); the engine checks arguments
and scopes everything to its tenant, so a tenant engine's router shows and
changes only that tenant's runs and schedules.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from streamline_core import (
    Engine,
    RunStatus,
    ScheduleInfo,
    ValidationError,
    WorkflowNotFoundError,
    WorkflowRun,
)
from streamline_core.schedule_info import SCHEDULE_WORKFLOW
from streamline_web._errors import JsonErrorRoute, error_responses
from streamline_web._security import AuthCallable, Guard

__all__ = ["api_router", "app_workflows", "run_json", "schedule_json"]

MAX_PAGE = 500


def run_json(run: WorkflowRun) -> dict[str, Any]:
    """The run as JSON (the stored document, datetimes as ISO 8601 strings)."""
    return run.model_dump(mode="json")


def app_workflows(engine: Engine) -> dict[str, tuple[str, ...]]:
    """The application's workflows registered on ``engine``, by name, and their versions.

    Leaves out the engine's internal ``streamline.schedule`` workflow (registered
    once a schedule is declared): it is not the application's, and
    ``engine.get_workflow`` does not hand it out.
    """
    return {
        name: versions
        for name, versions in sorted(engine.registered_versions.items())
        if name != SCHEDULE_WORKFLOW
    }


def schedule_json(info: ScheduleInfo) -> dict[str, Any]:
    """The schedule as JSON (``engine.schedules.get``'s answer, datetimes as ISO 8601)."""
    return info.model_dump(mode="json")


class _Body(BaseModel):
    # A misspelt field ("paylaod") would otherwise be dropped silently.
    model_config = ConfigDict(extra="forbid")


class ResumeBody(_Body):
    """Body of ``POST /api/runs/{id}/resume``."""

    payload: Any = Field(None, description="The wait's step output (any JSON value).")


class CancelBody(_Body):
    """Body of ``POST /api/runs/{id}/cancel``."""

    reason: str | None = None


class RewindBody(_Body):
    """Body of ``POST /api/runs/{id}/rewind``."""

    step_id: str


class EventBody(_Body):
    """Body of ``POST /api/events/{name}``."""

    data: Any = None
    run_id: str | None = Field(None, description="Only this run (else every run waiting).")
    idempotency_key: str | None = Field(
        None,
        description="Key of the runs the event's triggers start (a re-sent event starts none).",
    )


class RunsPageOut(BaseModel):
    """One page of runs."""

    items: list[WorkflowRun]
    next_cursor: str | None = None


class EventOut(BaseModel):
    """How many runs an event resumed."""

    resumed: int


class WorkflowOut(BaseModel):
    """A workflow registered on the app's engine."""

    name: str
    versions: list[str]
    steps: list[str]


class HookOut(BaseModel):
    """What a webhook caller learns: which run it resumed and its status (nothing else)."""

    run_id: str
    status: RunStatus


class HealthOut(BaseModel):
    """Liveness."""

    status: Literal["ok"]


def _json_filter(text: str | None, what: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise ValidationError(f'{what} must be a JSON object, e.g. {{"key": "value"}}') from None
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


async def _json_payload(request: Request) -> Any:
    """The request body as JSON; an empty body is ``null`` (a bare POST resumes with nothing)."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ValidationError("request body is not valid JSON") from None


def api_router(
    engine: Engine,
    *,
    auth: AuthCallable | None = None,
    read_only: bool = False,
    hooks: bool = True,
) -> APIRouter:
    """The JSON API as a router to include in your own FastAPI app.

    ``app.include_router(api_router(engine), prefix="/workflows")`` serves
    ``/workflows/api/runs`` and so on. Errors are answered by the router's
    own routes, so your app needs no exception handler.

    Args:
        engine: The engine whose runs the API shows and changes (usually a client).
        auth: ``auth(request) -> bool`` (or awaitable) asked on every route but
            the hooks and ``/healthz``; ``None`` allows every request.
        read_only: Refuse every state-changing route with 403 ``READ_ONLY``.
        hooks: Serve ``POST /hooks/{token}`` too.
    """
    return _build(engine, Guard(auth, read_only), hooks=hooks)


def _build(engine: Engine, guard: Guard, *, hooks: bool = True) -> APIRouter:
    router = APIRouter(route_class=JsonErrorRoute)
    read = [Depends(guard.check_read)]
    write = [Depends(guard.check_write)]
    run_errors = error_responses(400, 401, 403, 404)

    @router.get(
        "/api/runs",
        response_model=RunsPageOut,
        dependencies=read,
        responses=error_responses(400, 401),
        tags=["runs"],
        summary="Find runs",
    )
    async def find_runs(
        workflow_id: Annotated[list[str] | None, Query()] = None,
        status: Annotated[list[RunStatus] | None, Query()] = None,
        tenant_id: str | None = None,
        meta: Annotated[
            str | None, Query(description='JSON object of equality filters: {"user": "u1"}')
        ] = None,
        context: Annotated[str | None, Query(description="JSON object, as for meta")] = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        parent_run_id: Annotated[
            str | None, Query(description="Only the child runs of this run")
        ] = None,
        sort: Literal["-created_at", "created_at", "-updated_at", "updated_at"] = "-created_at",
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        cursor: str | None = None,
    ) -> JSONResponse:
        page = await engine.runs.find(
            workflow_id=workflow_id or None,
            status=status or None,
            tenant_id=tenant_id,
            meta=_json_filter(meta, "meta"),
            context=_json_filter(context, "context"),
            created_after=created_after,
            created_before=created_before,
            parent_run_id=parent_run_id,
            sort=sort,
            limit=limit,
            cursor=cursor,
        )
        return JSONResponse(
            {"items": [run_json(r) for r in page.items], "next_cursor": page.next_cursor}
        )

    async def _get(run_id: str) -> WorkflowRun:
        run = await engine.runs.get(run_id)
        if run is None:
            raise WorkflowNotFoundError(f"no run {run_id!r:.80}", run_id=run_id[:200])
        return run

    @router.get(
        "/api/runs/{run_id}",
        response_model=WorkflowRun,
        dependencies=read,
        responses=error_responses(400, 401, 404),
        tags=["runs"],
        summary="Get a run",
    )
    async def get_run(run_id: str) -> JSONResponse:
        return JSONResponse(run_json(await _get(run_id)))

    @router.post(
        "/api/runs/{run_id}/resume",
        response_model=WorkflowRun,
        dependencies=write,
        responses=run_errors,
        tags=["runs"],
        summary="Resume a run waiting on ctx.wait",
    )
    async def resume_run(run_id: str, body: Annotated[ResumeBody | None, Body()] = None) -> Any:
        payload = body.payload if body is not None else None
        return JSONResponse(run_json(await engine.runs.resume(run_id, payload)))

    @router.post(
        "/api/runs/{run_id}/cancel",
        response_model=WorkflowRun,
        dependencies=write,
        responses=run_errors,
        tags=["runs"],
        summary="Cancel an active run",
    )
    async def cancel_run(run_id: str, body: Annotated[CancelBody | None, Body()] = None) -> Any:
        reason = body.reason if body is not None else None
        return JSONResponse(run_json(await engine.runs.cancel(run_id, reason)))

    @router.post(
        "/api/runs/{run_id}/pause",
        response_model=WorkflowRun,
        dependencies=write,
        responses=run_errors,
        tags=["runs"],
        summary="Pause an active run",
    )
    async def pause_run(run_id: str) -> Any:
        return JSONResponse(run_json(await engine.runs.pause(run_id)))

    @router.post(
        "/api/runs/{run_id}/unpause",
        response_model=WorkflowRun,
        dependencies=write,
        responses=run_errors,
        tags=["runs"],
        summary="Unpause a run",
    )
    async def unpause_run(run_id: str) -> Any:
        return JSONResponse(run_json(await engine.runs.unpause(run_id)))

    @router.post(
        "/api/runs/{run_id}/rewind",
        response_model=WorkflowRun,
        dependencies=write,
        responses=run_errors,
        tags=["runs"],
        summary="Re-run a run from a step",
    )
    async def rewind_run(run_id: str, body: RewindBody) -> Any:
        return JSONResponse(run_json(await engine.runs.rewind_to(run_id, body.step_id)))

    @router.post(
        "/api/events/{name}",
        response_model=EventOut,
        dependencies=write,
        responses=run_errors,
        tags=["events"],
        summary="Emit an event to waiting runs",
    )
    async def emit_event(name: str, body: Annotated[EventBody | None, Body()] = None) -> Any:
        body = body or EventBody(run_id=None, idempotency_key=None)
        resumed = await engine.emit_event(
            name, body.data, run_id=body.run_id, idempotency_key=body.idempotency_key
        )
        return JSONResponse({"resumed": resumed})

    @router.get(
        "/api/workflows",
        response_model=list[WorkflowOut],
        dependencies=read,
        responses=error_responses(401),
        tags=["workflows"],
        summary="Workflows registered on this app's engine",
    )
    async def list_workflows() -> Any:
        out = []
        for name, versions in app_workflows(engine).items():
            out.append(
                {
                    "name": name,
                    "versions": list(versions),
                    "steps": list(engine.get_workflow(name).step_ids),
                }
            )
        return JSONResponse(out)

    schedule_errors = error_responses(400, 401, 403, 404)

    @router.get(
        "/api/schedules",
        response_model=list[ScheduleInfo],
        dependencies=read,
        responses=error_responses(401),
        tags=["schedules"],
        summary="Schedules in the store, by name",
    )
    async def list_schedules() -> Any:
        return JSONResponse([schedule_json(i) for i in await engine.schedules.list()])

    @router.post(
        "/api/schedules/{name}/pause",
        response_model=ScheduleInfo,
        dependencies=write,
        responses=schedule_errors,
        tags=["schedules"],
        summary="Pause a schedule (it fires nothing until unpaused)",
    )
    async def pause_schedule(name: str) -> Any:
        return JSONResponse(schedule_json(await engine.schedules.pause(name)))

    @router.post(
        "/api/schedules/{name}/unpause",
        response_model=ScheduleInfo,
        dependencies=write,
        responses=schedule_errors,
        tags=["schedules"],
        summary="Unpause a schedule (what came due while paused does not fire)",
    )
    async def unpause_schedule(name: str) -> Any:
        return JSONResponse(schedule_json(await engine.schedules.unpause(name)))

    @router.post(
        "/api/schedules/{name}/trigger",
        response_model=WorkflowRun,
        dependencies=write,
        responses=schedule_errors,
        tags=["schedules"],
        summary="Start one run of a schedule now, outside its cadence",
    )
    async def trigger_schedule(name: str) -> Any:
        # Needs the schedule's workflow registered on this app's engine (else a 404).
        return JSONResponse(run_json(await engine.schedules.trigger(name)))

    if hooks:

        @router.post(
            "/hooks/{token}",
            response_model=HookOut,
            responses=error_responses(400, 403, 404),
            tags=["hooks"],
            summary="Resume the run waiting on a hook (the token is the credential)",
            openapi_extra={
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {}}},
                    "description": "The payload (any JSON); an empty body is null.",
                }
            },
        )
        async def resume_hook(token: str, request: Request) -> Any:
            # No auth: whoever holds the unguessable token may resume that one wait.
            guard.check_writable()
            payload = await _json_payload(request)
            run = await engine.resume_hook(token, payload)
            return JSONResponse({"run_id": run.id, "status": run.status.value})

    @router.get("/healthz", response_model=HealthOut, tags=["health"], summary="Liveness")
    async def healthz() -> Any:
        return JSONResponse({"status": "ok"})

    return router
