"""``create_app``: the standalone ASGI app (JSON API, webhook route, dashboard, assets)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamline_core import Engine, ErrorCode
from streamline_web._errors import answer_for, error_response, validation_message
from streamline_web._security import AuthCallable, Guard, token_auth
from streamline_web.api import _build
from streamline_web.dashboard import dashboard_router

__all__ = ["create_app"]

_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}

# Pages ship their own script and style only; inline style attributes carry the
# timeline geometry (numbers the server computed), never user data.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'; object-src 'none'"
)
_SECURITY_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class _SecurityHeaders:
    """Adds CSP, anti-framing (the buttons change runs) and nosniff to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    engine: Engine,
    auth: AuthCallable | None = None,
    read_only: bool = False,
    *,
    token: str | None = None,
    title: str = "Streamline",
) -> FastAPI:
    """The standalone app: JSON API, ``/hooks/{token}``, the dashboard and its assets.

    Args:
        engine: The engine whose runs are shown and changed (usually a client;
            a tenant engine's app sees only its tenant).
        auth: ``auth(request) -> bool`` (or awaitable) asked on every route but
            the hooks, ``/healthz``, ``/login`` and ``/static``; ``None`` allows
            every request (local use, or behind your own auth).
        read_only: Refuse every state-changing request with 403 ``READ_ONLY``
            (the dashboard then shows no buttons).
        token: Instead of ``auth``: accept ``Authorization: Bearer <token>`` or
            the cookie the dashboard's ``/login`` form sets.
        title: Shown in the dashboard's header and the OpenAPI schema.

    Raises:
        ValueError: both ``auth`` and ``token`` were given, or ``token`` is empty.
    """
    if auth is not None and token is not None:
        raise ValueError("give auth or token, not both")
    check = token_auth(token) if token is not None else auth
    guard = Guard(check, read_only, login_path="/login" if token is not None else None)
    app = FastAPI(
        title=title,
        version="1",
        description="Streamline's runs, events and webhooks (see docs/web.md).",
        # The interactive docs load scripts from a CDN; nothing is fetched at run time.
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(_build(engine, guard))
    app.include_router(dashboard_router(engine, guard, title=title, token=token))
    static = files("streamline_web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        headers: dict[str, Any] | None = getattr(exc, "headers", None)
        return error_response(exc.status_code, code, str(exc.detail), headers)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, ErrorCode.VALIDATION_ERROR, validation_message(exc))

    async def unexpected(request: Request, exc: Exception) -> Response:
        answer = answer_for(exc)
        if answer is not None:
            return answer
        # Details stay in the server log (ServerErrorMiddleware re-raises after this).
        return error_response(500, "INTERNAL", "internal error")

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, unexpected)
    app.add_middleware(_SecurityHeaders)
    return app
