"""The dashboard: overview, runs, run and schedules pages rendered server-side with Jinja2.

Autoescaping is on for every template, and user data (input, meta, context,
outputs, wait data, error messages, tracebacks, schedule names and specs)
only ever reaches a page
through it. Buttons and the resume form call the JSON API with ``fetch``
from ``static/dashboard.js``; the pages themselves never change anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from streamline_core import (
    Engine,
    RunStatus,
    ScheduleInfo,
    ValidationError,
    WorkflowError,
    WorkflowRun,
)
from streamline_web._errors import WebError, validation_message
from streamline_web._security import TOKEN_COOKIE, Guard, _same_origin, token_matches
from streamline_web._visible import counts_by_status, find_visible
from streamline_web.api import app_workflows
from streamline_web.timeline import axis_text, duration_text, span_of, stamp, timeline

__all__ = ["ScheduleRow", "cadence_text", "dashboard_router", "timeline"]

PAGE_SIZES = (25, 50, 100)
RECENT = 10

_env = Environment(
    loader=PackageLoader("streamline_web", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)

# The run page lists this many of a run's child runs (the API pages through all).
CHILDREN_SHOWN = 50


def _pretty(value: Any) -> str:
    # A plain str: autoescaping then applies (Jinja's own tojson marks its output safe).
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_EVERY = re.compile(r"every ([0-9.]+)s")
_UNITS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


def cadence_text(spec: Any) -> str:
    """A schedule's recurrence for people: ``0 2 * * *``, ``every 5 min``, or the spec as JSON."""
    if not isinstance(spec, str):
        return json.dumps(spec, ensure_ascii=False, sort_keys=True, default=str)
    match = _EVERY.fullmatch(spec)
    if match is None:
        return spec
    every = float(match.group(1))
    for size, unit in _UNITS:
        if every >= size and every % size == 0:
            return f"every {every / size:g} {unit}"
    return f"every {every:g} s"


def _local(value: datetime | None, timezone: str) -> str:
    """``value`` in the schedule's own zone (``2030-01-02 02:00 CET``); empty for UTC or unknown."""
    if value is None or timezone == "UTC":
        return ""
    try:
        return value.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")
    except (ZoneInfoNotFoundError, ValueError):
        return ""


@dataclass(frozen=True)
class ScheduleRow:
    """One row of the schedules page: the schedule and what the page says about it."""

    info: ScheduleInfo
    cadence: str
    local_next: str
    next_in: str
    last_run: WorkflowRun | None


_env.filters["pretty"] = _pretty
_env.filters["when"] = _when
_env.filters["duration"] = duration_text
_env.filters["stamp"] = stamp


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _safe_next(value: str | None) -> str:
    # Only a path on this site: "//evil.example" or "https://..." would be an open redirect.
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


class HtmlErrorRoute(APIRoute):
    """Answers errors on dashboard pages with an HTML page (or the login redirect)."""

    guard: Guard | None = None
    common: dict[str, Any] | None = None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler: refusals and engine errors become pages, not JSON."""
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except WebError as exc:
                login = self.guard.login_path if self.guard is not None else None
                if exc.status == 401 and login:
                    target = request.url.path + (
                        f"?{request.url.query}" if request.url.query else ""
                    )
                    query = urlencode({"next": target})
                    return RedirectResponse(f"{_base(request)}{login}?{query}", status_code=303)
                return self._error(request, exc.message, exc.status)
            except WorkflowError as exc:
                return self._error(request, exc.message, exc.status)
            except RequestValidationError as exc:
                return self._error(request, validation_message(exc), 400)

        return guarded

    def _error(self, request: Request, message: str, status: int) -> HTMLResponse:
        return _page(request, "error.html", {"message": message}, status, self.common)


def _page(
    request: Request,
    name: str,
    values: dict[str, Any],
    status: int = 200,
    common: dict[str, Any] | None = None,
) -> HTMLResponse:
    values = {"base": _base(request), "title": "Streamline", **(common or {}), **values}
    html = _env.get_template(name).render(values)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "") in ("1", "on", "true", "yes")


def _statuses(values: list[str]) -> list[RunStatus]:
    out = []
    for value in values:
        try:
            out.append(RunStatus(value))
        except ValueError:
            raise ValidationError(f"unknown status {value!r:.60}") from None
    return out


def dashboard_router(
    engine: Engine, guard: Guard, *, title: str = "Streamline", token: str | None = None
) -> APIRouter:
    """The dashboard's pages (used by :func:`~streamline_web.create_app`).

    Args:
        engine: The engine whose runs the pages show.
        guard: The app's auth and read-only checks.
        title: Shown in the header.
        token: The app's token, when it has one: enables ``/login``.
    """
    common = {
        "title": title,
        "tenant": engine.tenant_id,
        "read_only": guard.read_only,
        "has_login": token is not None,
    }
    route_class = type("DashboardRoute", (HtmlErrorRoute,), {"guard": guard, "common": common})
    router = APIRouter(route_class=route_class, include_in_schema=False)

    def page(request: Request, name: str, values: dict[str, Any], status: int = 200) -> Response:
        return _page(request, name, values, status, common)

    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> Response:
        await guard.check_read(request)
        internal = _flag(request, "internal")
        counts = await counts_by_status(engine, internal=internal)
        failures, _ = await find_visible(
            engine, internal=internal, status="failed", sort="-updated_at", limit=RECENT
        )
        waiting, _ = await find_visible(
            engine, internal=internal, status="waiting", sort="created_at", limit=RECENT
        )
        return page(
            request,
            "overview.html",
            {
                "counts": counts,
                "total": sum(counts.values()),
                "failures": failures,
                "waiting": waiting,
                "workflows": list(app_workflows(engine)),
                "internal": internal,
                "also": "&internal=1" if internal else "",
            },
        )

    @router.get("/runs", response_class=HTMLResponse)
    async def runs(request: Request) -> Response:
        await guard.check_read(request)
        params = request.query_params
        workflow = params.get("workflow", "").strip()
        statuses = [v for v in params.getlist("status") if v]
        cursor = params.get("cursor") or None
        try:
            limit = int(params.get("limit", "50"))
        except ValueError:
            limit = 50
        limit = limit if limit in PAGE_SIZES else 50
        internal = _flag(request, "internal")
        filters = {"workflow": workflow, "status": statuses, "limit": limit, "internal": internal}
        error = None
        items: list[WorkflowRun] = []
        next_cursor = None
        try:
            items, next_cursor = await find_visible(
                engine,
                internal=internal,
                workflow_id=workflow or None,
                status=_statuses(statuses) or None,
                limit=limit,
                cursor=cursor,
            )
        except WorkflowError as exc:
            # Bad filters come from the page's own form or a hand-edited URL: say so, keep the form.
            error = exc.message
        query = [("workflow", workflow)] if workflow else []
        query += [("status", s) for s in statuses] + [("limit", str(limit))]
        query += [("internal", "1")] if internal else []
        return page(
            request,
            "runs.html",
            {
                "runs": items,
                "filters": filters,
                "statuses": [s.value for s in RunStatus],
                "workflows": list(app_workflows(engine)),
                "next_url": f"?{urlencode([*query, ('cursor', next_cursor)])}"
                if next_cursor
                else None,
                "first_url": f"?{urlencode(query)}" if cursor else None,
                "error": error,
            },
            400 if error else 200,
        )

    @router.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: str) -> Response:
        await guard.check_read(request)
        run = await engine.runs.get(run_id)
        if run is None:
            return page(request, "error.html", {"message": f"no run {run_id!r:.80}"}, 404)
        # An active run's span reaches now (by the engine's clock, as its workers'),
        # so a wait shows how long it has lasted so far.
        now = None if run.is_terminal else engine.clock.now()
        start, end = span_of(run, now)
        children = await engine.runs.find(
            parent_run_id=run.id, sort="created_at", limit=CHILDREN_SHOWN
        )
        seconds = (end - start) / timedelta(seconds=1)
        return page(
            request,
            "run.html",
            {
                "run": run,
                "bars": timeline(run, now),
                "span": duration_text(seconds),
                "axis": [(q * 25, "0" if q == 0 else axis_text(seconds * q / 4)) for q in range(5)],
                "resumable": run.status == RunStatus.WAITING
                and run.wait is not None
                and run.wait.kind == "human",
                "active": not run.is_terminal,
                "children": children.items,
                "more_children": children.next_cursor is not None,
            },
        )

    @router.get("/schedules", response_class=HTMLResponse)
    async def schedules(request: Request) -> Response:
        await guard.check_read(request)
        now = engine.clock.now()
        rows = []
        for info in await engine.schedules.list():
            last = await engine.runs.get(info.last_run_id) if info.last_run_id else None
            ahead = (info.next_fire_at - now) / timedelta(seconds=1) if info.next_fire_at else None
            rows.append(
                ScheduleRow(
                    info=info,
                    cadence=cadence_text(info.spec),
                    local_next=_local(info.next_fire_at, info.timezone),
                    next_in="" if ahead is None else f"in {duration_text(ahead)}",
                    last_run=last,
                )
            )
        return page(request, "schedules.html", {"rows": rows})

    if token is not None:

        @router.get("/login", response_class=HTMLResponse)
        async def login_form(request: Request) -> Response:
            nxt = _safe_next(request.query_params.get("next"))
            return page(request, "login.html", {"next": nxt, "failed": False, "login_page": True})

        @router.post("/login", response_class=HTMLResponse)
        async def login(request: Request) -> Response:
            if not _same_origin(request):
                raise WebError(403, "CROSS_SITE_REQUEST", "cross-site login refused")
            form = parse_qs((await request.body()).decode("utf-8", "replace"))
            given = (form.get("token") or [""])[0]
            nxt = _safe_next((form.get("next") or ["/"])[0])
            if not token_matches(given, token):
                return page(
                    request, "login.html", {"next": nxt, "failed": True, "login_page": True}, 401
                )
            response = RedirectResponse(f"{_base(request)}{nxt}", status_code=303)
            response.set_cookie(
                TOKEN_COOKIE,
                given,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path=_base(request) or "/",
            )
            return response

        @router.post("/logout")
        async def logout(request: Request) -> Response:
            if not _same_origin(request):
                raise WebError(403, "CROSS_SITE_REQUEST", "cross-site logout refused")
            response = RedirectResponse(f"{_base(request)}/login", status_code=303)
            response.delete_cookie(TOKEN_COOKIE, path=_base(request) or "/")
            return response

    return router
