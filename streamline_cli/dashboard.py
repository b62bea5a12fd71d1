"""``streamline dashboard``: serve the web dashboard and JSON API (extra ``web``) with uvicorn.

The dashboard's engine is a client: resuming or rewinding a run writes the
store, and a worker (``streamline worker``) executes the steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import socket
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from streamline_cli._support import (
    EXIT_FAILED,
    EXIT_USAGE,
    CommandError,
    cli_errors,
    fail,
    load_engine,
    store_url,
)
from streamline_core import Engine

__all__ = ["dashboard", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    # Bind here rather than in uvicorn: a busy port is then one line of ours, not a log dump.
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise CommandError(f"cannot resolve --host {host!r}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _server_class() -> Any:
    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn re-raises SIGINT/SIGTERM after a clean stop; like ``worker``, exit 0 instead."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return QuietServer


def dashboard(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            envvar="STREAMLINE_STORE",
            show_envvar=False,
            help="Store URL. Default: $STREAMLINE_STORE, else sqlite:///./streamline.db.",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Interface to listen on; anything but loopback needs --token.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8080,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="STREAMLINE_DASHBOARD_TOKEN",
            help="Require this bearer token (or the login cookie) on every request "
            "but /hooks and /healthz. Also read from $STREAMLINE_DASHBOARD_TOKEN, "
            "which keeps it out of the process list.",
        ),
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Refuse every change (403).")
    ] = False,
    app_target: Annotated[
        str | None,
        typer.Option(
            "--app",
            metavar="MODULE:ATTRIBUTE",
            help="Your Engine (or a factory): its workflows are listed, its tenant scopes the app.",
        ),
    ] = None,
) -> None:
    """Serve the dashboard and the JSON API (needs the ``web`` extra)."""
    if not is_loopback(host) and not token:
        fail(
            f"--host {host} is reachable from other machines; give --token "
            "(or $STREAMLINE_DASHBOARD_TOKEN) to require one",
            EXIT_USAGE,
        )
    if token is not None and not token.strip():
        fail("--token must not be empty", EXIT_USAGE)
    try:
        import uvicorn

        from streamline_web import create_app

        quiet_server = _server_class()
    except ImportError as exc:
        fail(
            f"the dashboard needs the web extra: pip install 'streamline[web]' ({exc})", EXIT_FAILED
        )

    url = None if app_target else store_url(store, "read" if read_only else "write")
    with cli_errors(url or store):
        engine: Engine = load_engine(app_target, store=store) if app_target else Engine(url)
        sock = _listen(host, port)
        web_app: Any = create_app(engine, read_only=read_only, token=token)
        config = uvicorn.Config(web_app, log_level="warning", lifespan="off")
        server = quiet_server(config)
        shown = f"[{host}]" if ":" in host else host
        where = f"http://{shown}:{sock.getsockname()[1]}/"
        typer.echo(
            f"dashboard on {where} (store {engine.store_url or type(engine.store).__name__}"
            f"{', read-only' if read_only else ''}{', token required' if token else ''})",
            err=True,
        )

        async def serve() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, server.handle_exit, sig, None)
            try:
                await server.serve(sockets=[sock])
            finally:
                await engine.shutdown()

        asyncio.run(serve())
