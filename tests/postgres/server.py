"""A throwaway PostgreSQL cluster for the test run: ``initdb`` + ``pg_ctl`` on a private socket.

:func:`server_url` starts the cluster on first use (once per process) and
returns a URL to a fresh database on it; :func:`stop` (also registered with
``atexit``) stops the server and removes its directory. The cluster listens
on a unix socket in its own temporary directory only (``listen_addresses``
empty), so it never clashes with a server already on the machine. With
``$STREAMLINE_TEST_POSTGRES_URL`` set, that server is used instead and
nothing is started.

As root, PostgreSQL refuses to run, so ``initdb`` and ``pg_ctl`` run as the
``postgres`` user (``runuser``) in a directory owned by it. Durability is
switched off (``fsync=off``): the tests check behaviour, not the disk.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

__all__ = ["ENV", "server_url", "stop", "drop_table", "PostgresUnavailable"]

ENV = "STREAMLINE_TEST_POSTGRES_URL"
_DATABASE = "streamline_test"


class PostgresUnavailable(RuntimeError):
    """The test server could not be started (the message says why and what to do)."""


_lock = threading.Lock()
_state: dict[str, object] = {}


def _binaries() -> Path:
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


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(_as_postgres(argv), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise PostgresUnavailable(
            f"{what} failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )


def _start() -> str:
    bin_dir = _binaries()
    root = Path(tempfile.mkdtemp(prefix="streamline-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    _state["root"], _state["data"], _state["bin"] = root, data, bin_dir
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        "initdb",
    )
    options = (
        f"-k {root} -p {port} -c listen_addresses='' -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        ],
        "pg_ctl start (see its server.log)",
    )
    _state["running"] = True
    _run(
        [str(bin_dir / "createdb"), "-h", str(root), "-p", str(port), "-U", "postgres", _DATABASE],
        "createdb",
    )
    return f"postgresql://postgres@/{_DATABASE}?host={root}&port={port}"


def server_url() -> str:
    """The URL of the test database, starting the throwaway cluster on first use.

    Raises:
        PostgresUnavailable: The server binaries are missing or the cluster
            did not start; the message names the failing command.
    """
    given = os.environ.get(ENV)
    if given:
        return given
    with _lock:
        url = _state.get("url")
        if isinstance(url, str):
            return url
        failed = _state.get("failed")
        if isinstance(failed, str):
            raise PostgresUnavailable(failed)
        try:
            url = _start()
        except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
            _state["failed"] = f"cannot start the test PostgreSQL server: {exc}"
            stop()
            raise PostgresUnavailable(str(_state["failed"])) from None
        _state["url"] = url
        return url


def stop() -> None:
    """Stop the throwaway cluster (if this process started one) and delete it."""
    root, data, bin_dir = _state.get("root"), _state.get("data"), _state.get("bin")
    if _state.pop("running", False) and isinstance(bin_dir, Path) and isinstance(data, Path):
        subprocess.run(
            _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
    if isinstance(root, Path):
        shutil.rmtree(root, ignore_errors=True)
    _state.pop("root", None)
    _state.pop("url", None)


atexit.register(stop)


async def drop_table(table: str) -> None:
    """Drop a test store's table and what belongs to it (its trigger function, its version)."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(server_url(), autocommit=True) as conn:
        await conn.execute(f'DROP TABLE IF EXISTS "{table}"'.encode())
        await conn.execute(f'DROP FUNCTION IF EXISTS "{table}_notify"()'.encode())
        # A store that was never used created no version table either.
        await conn.execute(
            "DO $$ BEGIN IF to_regclass('streamline_schema') IS NOT NULL THEN "
            "DELETE FROM streamline_schema WHERE table_name = "
            + psycopg.sql.quote(table)
            + "; END IF; END $$"
        )
