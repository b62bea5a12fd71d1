"""A throwaway PostgreSQL cluster: ``initdb`` in a temporary directory, ``pg_ctl`` on a socket.

Used by the test run (``tests/postgres/server.py``: one cluster per process,
durability off) and by the benchmarks (``python -m benchmarks``: a cluster of
their own with the server's default, durable settings). Imports nothing but
the standard library, so both can use it.

The cluster listens on a unix socket in its own temporary directory only
(``listen_addresses`` empty), so it never clashes with a server already on
the machine. As root, PostgreSQL refuses to run, so ``initdb`` and
``pg_ctl`` run as the ``postgres`` user (``runuser``) in a directory owned by
it. :meth:`Cluster.stop_server` and :meth:`Cluster.start_server` stop and
start the same cluster again (same data, same socket), for fault tests.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["Cluster", "PostgresUnavailable", "FAST_TEST_SETTINGS", "binaries"]


class PostgresUnavailable(RuntimeError):
    """The server could not be started (the message says why and what to do)."""


# For a test cluster only: nothing is flushed to disk (fsync), a commit does
# not wait for its WAL write (synchronous_commit), no full pages in the WAL.
# A crash of the *server* loses the last acknowledged commits with
# synchronous_commit=off, so a fault test that kills the server turns it back
# on for its own database (fsync=off survives a server crash: the OS still
# has the pages; only an OS crash would lose them).
FAST_TEST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def binaries() -> Path:
    """The directory of Debian's (or ``$PATH``'s) ``initdb`` and ``pg_ctl``.

    Raises:
        PostgresUnavailable: No server binaries are installed.
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb) found: install them "
        "(apt-get install -y postgresql) or set $STREAMLINE_TEST_POSTGRES_URL"
    )


def _free_port() -> int:
    # Only names the socket file (there is no TCP listener), but a port no
    # one uses keeps the name unique in anybody's eyes.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str], what: str, timeout: float = 120) -> None:
    done = subprocess.run(_as_postgres(argv), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise PostgresUnavailable(
            f"{what} failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )


class Cluster:
    """One throwaway cluster.

    Args:
        settings: Server settings (``-c name=value``) on top of PostgreSQL's
            defaults, e.g. :data:`FAST_TEST_SETTINGS`.
        prefix: Prefix of its temporary directory.
    """

    def __init__(
        self, settings: Mapping[str, str] | None = None, prefix: str = "streamline-pg-"
    ) -> None:
        self.settings = dict(settings or {})
        self.prefix = prefix
        self.root: Path | None = None
        self.port = 0
        self.running = False
        self._bin: Path | None = None

    @classmethod
    def attach(cls, root: str, port: int) -> Cluster:
        """The running cluster another process created in ``root`` (this one must not stop it)."""
        cluster = cls()
        cluster._bin = binaries()
        cluster.root, cluster.port, cluster.running = Path(root), port, True
        return cluster

    @property
    def data(self) -> Path:
        assert self.root is not None, "the cluster was never created"
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for ``database`` on this cluster's socket."""
        assert self.root is not None, "the cluster was never created"
        return f"postgresql://postgres@/{database}?host={self.root}&port={self.port}"

    def create(self) -> None:
        """``initdb`` a new cluster and start it.

        Raises:
            PostgresUnavailable: ``initdb`` or ``pg_ctl start`` failed.
        """
        self._bin = binaries()
        self.root = Path(tempfile.mkdtemp(prefix=self.prefix))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.port = _free_port()
        initdb = [str(self._bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
        _run([*initdb, "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"], "initdb")
        self.start_server()

    def start_server(self, timeout: float = 60) -> None:
        """Start the (stopped) server on the same data and socket, waiting until it accepts.

        Raises:
            PostgresUnavailable: It did not start (see ``server.log``).
        """
        assert self._bin is not None and self.root is not None
        settings = {"listen_addresses": "''", "max_connections": "200", **self.settings}
        options = f"-k {self.root} -p {self.port} " + " ".join(
            f"-c {name}={value}" for name, value in settings.items()
        )
        pg_ctl = [str(self._bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log")]
        _run(
            [*pg_ctl, "-o", options, "-w", "-t", str(int(timeout)), "start"],
            f"pg_ctl start (see {self.root / 'log'})",
            timeout=timeout + 30,
        )
        self.running = True

    def stop_server(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m MODE`` (``smart``, ``fast``; ``immediate`` is a crash of the server)."""
        if not self.running or self._bin is None:
            return
        _run([str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop"], "pg_ctl stop")
        self.running = False

    def createdb(self, name: str) -> str:
        """Create database ``name``; its URL."""
        assert self._bin is not None and self.root is not None
        where = ["-h", str(self.root), "-p", str(self.port), "-U", "postgres"]
        _run([str(self._bin / "createdb"), *where, name], "createdb")
        return self.url(name)

    def remove(self) -> None:
        """Stop the server (immediately) and delete the cluster's directory."""
        try:
            self.stop_server("immediate")
        except (PostgresUnavailable, OSError, subprocess.SubprocessError):
            pass  # removed below all the same
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
