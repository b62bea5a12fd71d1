"""Streamline's HTTP API, webhook route and dashboard (extra ``web``).

``create_app(engine)`` is a standalone ASGI app (JSON API, ``/hooks/{token}``,
dashboard); ``api_router(engine)`` is the JSON API alone, to include in your
own FastAPI app. docs/web.md has the routes, auth, CSRF and tenant rules.
"""

from streamline_web._security import AuthCallable, token_auth
from streamline_web.api import api_router
from streamline_web.app import create_app

__all__ = ["AuthCallable", "api_router", "create_app", "token_auth"]
