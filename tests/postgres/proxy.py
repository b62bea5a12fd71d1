"""A PostgreSQL wire proxy for fault tests: it can lose the answer to a committed statement.

``CutProxy`` listens on a unix socket of its own and forwards every
connection to the real server, byte for byte. When :meth:`CutProxy.arm` was
given a marker, the first client message that carries it (a statement's
text or one of its parameters) is forwarded, the server's whole answer is
read up to its ``ReadyForQuery`` (so the statement has run and, on an
autocommit connection, committed), and then both sides of that connection
are closed without the answer ever reaching the client: exactly a
connection that drops after COMMIT was sent. With ``go_down=True`` the
proxy then also closes every other connection and refuses new ones until
:meth:`CutProxy.up`, so even reading the row back fails.

It parses just enough of the protocol to find message boundaries in the
server's stream (type byte, length), which the startup exchange on a
connection without TLS also follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = ["CutProxy"]


class CutProxy:
    """A proxy in front of the server of ``url`` (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.upstream = conninfo_to_dict(url)
        self.dir = Path(tempfile.mkdtemp(prefix="streamline-pg-proxy-"))
        self.port = int(self.upstream.get("port") or 5432)
        self.marker: bytes | None = None
        self.go_down = False
        self.down = False
        self.cuts = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """A connection string to the server through this proxy (no TLS: the proxy reads it)."""
        params: dict[str, Any] = {
            "host": str(self.dir),
            "port": str(self.port),
            "sslmode": "disable",
            "gssencmode": "disable",
        }
        kept = {k: v for k, v in self.upstream.items() if k in ("dbname", "user", "password")}
        return make_conninfo("", **kept, **params)

    async def start(self) -> CutProxy:
        path = str(self.dir / f".s.PGSQL.{self.port}")
        self._server = await asyncio.start_unix_server(self._serve, path=path)
        return self

    async def close(self) -> None:
        for link in list(self._links):
            link.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        shutil.rmtree(self.dir, ignore_errors=True)

    def arm(self, marker: str, *, go_down: bool = False) -> None:
        """Lose the answer of the next statement carrying ``marker`` (once)."""
        self.marker, self.go_down = marker.encode(), go_down

    def up(self) -> None:
        """Accept connections again after a cut that took the proxy down."""
        self.down = False

    async def _connect_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host = str(self.upstream.get("host") or "/var/run/postgresql")
        if host.startswith("/"):
            return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{self.port}")
        return await asyncio.open_connection(host, self.port)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.down:
            client_w.close()
            return
        self.connections += 1
        server_r, server_w = await self._connect_upstream()
        self._links.update((client_w, server_w))
        cut = asyncio.Event()  # set by the client pump once it forwarded the marked message
        pumps = [
            asyncio.create_task(self._client_to_server(client_r, server_w, cut)),
            asyncio.create_task(self._server_to_client(server_r, client_w, cut)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            for w in (client_w, server_w):
                self._links.discard(w)
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cut: asyncio.Event
    ) -> None:
        while data := await reader.read(65536):
            marked = self.marker is not None and self.marker in data
            if marked:
                self.marker = None
                cut.set()  # before the server can answer: none of its answer gets through
            writer.write(data)
            await writer.drain()
            if marked:
                await asyncio.Event().wait()  # the other pump ends this connection
        writer.close()

    async def _server_to_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, cut: asyncio.Event
    ) -> None:
        while True:
            kind = await reader.readexactly(1)
            (length,) = struct.unpack("!i", await reader.readexactly(4))
            body = await reader.readexactly(length - 4)
            if cut.is_set():
                if kind == b"Z":  # the marked statement is over (committed): drop the answer
                    self.cuts += 1
                    if self.go_down:
                        self.down = True
                        for link in list(self._links):
                            link.close()
                    return
                continue
            writer.write(kind + struct.pack("!i", length) + body)
            await writer.drain()
