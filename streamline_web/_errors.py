"""Error answers: every failure is ``{"error": {"code": ..., "message": ...}}`` with a status.

A ``WorkflowError`` answers its own ``.status``; the web layer adds a few
codes of its own (``UNAUTHORIZED``, ``CROSS_SITE_REQUEST``, ``READ_ONLY``,
``NOT_FOUND``, ``METHOD_NOT_ALLOWED``, ``INTERNAL``). The route class here
turns them into responses inside the router itself, so an ``api_router``
mounted in someone else's FastAPI app answers the same shape without that
app registering any exception handler.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from streamline_core import ErrorCode, WorkflowError

__all__ = [
    "ErrorOut",
    "JsonErrorRoute",
    "WebError",
    "answer_for",
    "error_response",
    "error_responses",
    "validation_message",
]

MESSAGE_LIMIT = 500


class WebError(Exception):
    """A refusal decided by the web layer (auth, cross-site, read-only)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _bounded(message: str) -> str:
    # Messages may quote user input; keep a bad request from echoing megabytes back.
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error answer."""
    return JSONResponse(
        {"error": {"code": str(code), "message": _bounded(message)}},
        status_code=status,
        headers=headers,
    )


def validation_message(exc: RequestValidationError) -> str:
    """One readable line out of FastAPI's list of validation problems."""
    parts: list[str] = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        if err.get("type") == "json_invalid":
            parts.append("request body is not valid JSON")
        else:
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def answer_for(exc: Exception) -> JSONResponse | None:
    """The error response for a known exception, or ``None`` for anything else."""
    if isinstance(exc, WebError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)
    if isinstance(exc, WorkflowError):
        return error_response(exc.status, exc.code, exc.message)
    if isinstance(exc, RequestValidationError):
        return error_response(400, ErrorCode.VALIDATION_ERROR, validation_message(exc))
    return None


class JsonErrorRoute(APIRoute):
    """An ``APIRoute`` that answers known errors as JSON error bodies itself."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler: validation, auth and engine errors become JSON answers."""
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (WebError, WorkflowError, RequestValidationError) as exc:
                answer = answer_for(exc)
                assert answer is not None
                return answer

        return guarded


class ErrorInfo(BaseModel):
    """What went wrong: a stable code and a readable message."""

    code: str
    message: str


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: ErrorInfo


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the error answers of a route."""
    return {status: {"model": ErrorOut} for status in statuses}
