"""Who may do what: the ``auth`` callable, the dashboard token, cross-site and read-only refusals.

Every route except ``/hooks/{token}``, ``/healthz``, the static assets and
the login page asks :meth:`Guard.check_read`; every state-changing route
asks :meth:`Guard.check_write`, which adds two refusals:

* a cross-site request (a browser told us it came from another site via
  ``Sec-Fetch-Site``, or its ``Origin`` names another host than ``Host``),
  or one carrying a body type an HTML form can send cross-site without a
  CORS preflight (``application/x-www-form-urlencoded``,
  ``multipart/form-data``, ``text/plain``). Together these stop a page on
  another site from driving the API with the user's cookie, or a local
  dashboard with no auth at all, while scripts (curl, httpx), which send
  neither header and no cookie of the user's, are unaffected.
* ``read_only=True``: every write is ``403 READ_ONLY``.
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request

from streamline_web._errors import WebError

__all__ = ["AuthCallable", "Guard", "TOKEN_COOKIE", "token_auth"]

AuthCallable = Callable[[Request], bool | Awaitable[bool]]
"""``auth(request) -> bool`` (or an awaitable of one): whether the request may proceed."""

TOKEN_COOKIE = "streamline_token"
"""The cookie the dashboard's login form sets when the app has a token."""

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison, so response timing does not reveal the token bit by bit."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def token_auth(token: str) -> AuthCallable:
    """An ``auth`` callable accepting ``Authorization: Bearer <token>`` or the login cookie.

    Raises:
        ValueError: ``token`` is empty.
    """
    if not isinstance(token, str) or not token:
        raise ValueError("the dashboard token must be a non-empty string")

    def check(request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token_matches(value.strip(), token):
            return True
        return token_matches(request.cookies.get(TOKEN_COOKIE), token)

    return check


def _same_origin(request: Request) -> bool:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        # Sandboxed frames and some redirects send "null": never trust it for a write.
        return False
    origin_host = urlsplit(origin).netloc.lower()
    hosts = {request.headers.get("host", "").lower()}
    # A reverse proxy may rewrite Host; browsers cannot set X-Forwarded-Host cross-site.
    forwarded = request.headers.get("x-forwarded-host")
    if forwarded:
        hosts.add(forwarded.split(",")[0].strip().lower())
    return origin_host in hosts


class Guard:
    """Auth, cross-site and read-only checks shared by the API, the hooks and the dashboard.

    Args:
        auth: ``auth(request) -> bool`` (or awaitable); ``None`` allows every request.
        read_only: Refuse every state-changing request with 403.
        login_path: Where the dashboard sends a visitor who is not authorised
            (only when the app has a token, so a login form exists).
    """

    def __init__(
        self,
        auth: AuthCallable | None = None,
        read_only: bool = False,
        login_path: str | None = None,
    ) -> None:
        if auth is not None and not callable(auth):
            raise TypeError(f"auth must be a callable (request) -> bool, got {type(auth).__name__}")
        self.auth = auth
        self.read_only = bool(read_only)
        self.login_path = login_path

    async def allowed(self, request: Request) -> bool:
        """Whether ``auth`` lets ``request`` in (always, without ``auth``)."""
        if self.auth is None:
            return True
        verdict = self.auth(request)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return verdict is True

    async def check_read(self, request: Request) -> None:
        """Refuse a request ``auth`` does not allow (401).

        Raises:
            WebError: 401 ``UNAUTHORIZED``.
        """
        if not await self.allowed(request):
            raise WebError(
                401,
                "UNAUTHORIZED",
                "authentication required (Authorization: Bearer <token>, or log in)",
                {"WWW-Authenticate": "Bearer"},
            )

    def check_origin(self, request: Request) -> None:
        """Refuse a cross-site or form-encoded state-changing request (403).

        Raises:
            WebError: 403 ``CROSS_SITE_REQUEST``.
        """
        if not _same_origin(request):
            raise WebError(403, "CROSS_SITE_REQUEST", "cross-site requests cannot change runs")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in _FORM_TYPES:
            raise WebError(
                403,
                "CROSS_SITE_REQUEST",
                f"{content_type} bodies are refused on state-changing routes; send JSON",
            )

    def check_writable(self) -> None:
        """Refuse any write when the app is read-only (403).

        Raises:
            WebError: 403 ``READ_ONLY``.
        """
        if self.read_only:
            raise WebError(403, "READ_ONLY", "this dashboard is read-only")

    async def check_write(self, request: Request) -> None:
        """Everything a state-changing request must pass: auth, same origin, writable.

        Raises:
            WebError: 401 ``UNAUTHORIZED``, 403 ``CROSS_SITE_REQUEST`` or 403 ``READ_ONLY``.
        """
        await self.check_read(request)
        self.check_origin(request)
        self.check_writable()
