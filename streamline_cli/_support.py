"""What every command shares: exit codes, one-line errors, store URLs, loading an app.

Exit codes (docs/cli.md has the same table):

=====  ===================================================================
0      success
1      the command was understood but failed: a run, workflow or database
       it names does not exist, a run is in the wrong state, the store
       cannot be reached, opened, read or written, a worker's app raised
2      usage error: unknown command or option, a missing or malformed
       argument (bad JSON, a store URL that is malformed or of an unknown
       scheme, a MODULE:ATTRIBUTE that does not name an Engine)
130    interrupted (Ctrl-C) before the command finished
=====  ===================================================================
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, NoReturn
from urllib.parse import parse_qsl, urlencode

import typer
from rich.console import Console

from streamline_core import (
    DataCorruptionError,
    Engine,
    InvalidStateError,
    StepNotFoundError,
    StoreUnavailableError,
    ValidationError,
    WorkflowError,
    WorkflowNotFoundError,
)

__all__ = [
    "CommandError",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "StoreUse",
    "cli_errors",
    "err_console",
    "fail",
    "load_engine",
    "one_line",
    "parse_json",
    "shared_across_processes",
    "store_label",
    "store_url",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEFAULT_STORE_URL = "sqlite:///./streamline.db"
CLI_MONGO_TIMEOUT_MS = 5000
"""Server-selection timeout the inspection commands give MongoDB (the driver's default is 30 s)."""

StoreUse = Literal["read", "write", "create"]
"""What a command does with its store: read it, change an existing one, or create it."""

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class CommandError(Exception):
    """A failure already worded for the user, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def one_line(message: object, limit: int = 400) -> str:
    """``message`` on one line: whitespace collapsed, driver dumps cut off, at most ``limit``."""
    text = " ".join(str(message).split())
    # pymongo appends its timeouts and a full topology description to server errors.
    text = re.split(r" \(configured timeouts:|, Timeout: |, Topology Description: ", text)[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``error: message`` (one line) on stderr and exit with ``code``."""
    err_console.print(f"[red]error:[/red] {one_line(message)}", markup=True, emoji=False)
    raise typer.Exit(code)


def _exit_code(exc: BaseException) -> int:
    if isinstance(exc, CommandError):
        return exc.code
    if isinstance(exc, (ValidationError, ValueError)):
        return EXIT_USAGE
    return EXIT_FAILED


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CommandError):
        return str(exc)
    if isinstance(
        exc,
        (
            WorkflowNotFoundError,
            InvalidStateError,
            StepNotFoundError,
            StoreUnavailableError,
            DataCorruptionError,
            ValidationError,
        ),
    ):
        return str(exc)
    if isinstance(exc, WorkflowError):
        return f"{exc.code}: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    if isinstance(exc, ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def cli_errors(store: str | None = None) -> Iterator[None]:
    """Turn any exception raised inside into one line on stderr and an exit code.

    ``STREAMLINE_TRACEBACK=1`` re-raises instead, for debugging.

    Args:
        store: The store URL in use: an unreachable MongoDB is reported with it.
    """
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except Exception as exc:
        if os.environ.get("STREAMLINE_TRACEBACK") == "1":
            raise
        message = _describe(exc)
        if store and store.startswith("mongodb") and "unavailable" in message:
            message = f"cannot reach MongoDB at {_redacted_hosts(store)}: {message}"
        if message.startswith("no database at "):
            message += " (check --store / $STREAMLINE_STORE; only worker and demo create one)"
        fail(message, _exit_code(exc))


def _redacted_hosts(url: str) -> str:
    rest = url.partition("://")[2]
    hosts = rest.split("/", 1)[0]
    return hosts.rpartition("@")[2] or "?"


def parse_json(option: str, text: str) -> Any:
    """``text`` parsed as JSON, or a usage error naming ``option``."""
    try:
        return json.loads(text)
    except ValueError as exc:
        fail(f"{option} is not valid JSON: {exc}", EXIT_USAGE)


def store_url(url: str | None, use: StoreUse) -> str:
    """The store URL a command opens: ``url``, else ``$STREAMLINE_STORE``, else the default.

    For SQLite, commands that only read open the file read-only
    (``mode=ro``) and commands that change runs open an existing file
    (``mode=rw``): neither creates a database where a path was mistyped.
    Only ``use="create"`` (worker, demo) may create one. MongoDB gets a
    short server-selection timeout unless the URL sets one, so an
    unreachable server fails within seconds.

    Args:
        url: The ``--store`` value.
        use: What the command does with the store.

    Raises:
        typer.Exit: The URL is malformed (exit 2).
    """
    chosen = url or os.environ.get("STREAMLINE_STORE") or DEFAULT_STORE_URL
    scheme, sep, rest = chosen.partition("://")
    if not sep or not scheme:
        fail(
            f"store URL {chosen!r} has no scheme; use e.g. sqlite:///path.db, "
            "mongodb://host/db or memory://",
            EXIT_USAGE,
        )
    scheme = scheme.lower()
    if scheme == "sqlite":
        path = rest.partition("?")[0]
        if path in ("", "/") or (not path.startswith("/") and path != ":memory:"):
            fail(
                f"store URL {chosen!r} names no file; use sqlite:///relative/path.db or "
                "sqlite:////absolute/path.db",
                EXIT_USAGE,
            )
        if use != "create" and path not in (":memory:", "/:memory:"):
            return _with_param(chosen, "mode", "ro" if use == "read" else "rw")
    if scheme in ("mongodb", "mongodb+srv") and use != "create":
        return _with_param(chosen, "serverSelectionTimeoutMS", str(CLI_MONGO_TIMEOUT_MS))
    return chosen


def _with_param(url: str, name: str, value: str) -> str:
    base, _, query = url.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    if any(key.lower() == name.lower() for key, _ in params):
        return url
    return f"{base}?{urlencode([*params, (name, value)])}"


def shared_across_processes(url: str) -> bool:
    """Whether several processes can open the store ``url`` names (not ``memory://``)."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() == "memory":
        return False
    return not (scheme.lower() == "sqlite" and rest.partition("?")[0] in (":memory:", "/:memory:"))


def store_label(url: str) -> str:
    """What ``url`` is, for people: ``SQLite, synchronous=FULL``, ``MongoDB``, ..."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "sqlite":
        options = dict(parse_qsl(rest.partition("?")[2]))
        return f"SQLite, synchronous={options.get('synchronous', 'FULL').upper()}"
    if scheme.startswith("mongodb"):
        return "MongoDB"
    if scheme == "memory":
        return "in-memory"
    return f"{scheme}:// store"


def load_engine(target: str, *, store: str | None = None) -> Engine:
    """The :class:`Engine` that ``MODULE:ATTRIBUTE`` names (an engine, or a no-argument factory).

    The module is imported with the working directory on ``sys.path``.
    With ``store``, ``$STREAMLINE_STORE`` is set to it first, so an app that
    builds ``Engine()`` without a store uses it; an engine built on another
    store is refused.

    Raises:
        CommandError: The target is malformed, its module or attribute does
            not exist, or it is not an Engine (exit 2); importing the module
            or calling the factory raised (exit 1).
    """
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise CommandError(
            f"expected MODULE:ATTRIBUTE (e.g. app.workers:engine), got {target!r}", EXIT_USAGE
        )
    if store is not None:
        os.environ["STREAMLINE_STORE"] = store
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, ".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise CommandError(
                f"no module named {exc.name!r} (from {target!r})", EXIT_USAGE
            ) from None
        raise CommandError(f"importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        raise CommandError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    if not hasattr(module, attr):
        raise CommandError(f"module {module_name!r} has no attribute {attr!r}", EXIT_USAGE)
    value = getattr(module, attr)
    if callable(value) and not isinstance(value, Engine):
        value = _call_factory(target, value)
    if not isinstance(value, Engine):
        raise CommandError(
            f"{target!r} is a {type(value).__name__}, not a streamline Engine "
            "(or a function that returns one)",
            EXIT_USAGE,
        )
    if store is not None and value.store_url != store:
        raise CommandError(
            f"--store is {store!r} but {target!r} uses {value.store_url or repr(value.store)}; "
            "build it as Engine() (it then reads $STREAMLINE_STORE) or drop --store",
            EXIT_USAGE,
        )
    return value


def _call_factory(target: str, factory: Any) -> Any:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        required = [
            p.name
            for p in signature.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            raise CommandError(
                f"{target!r} is a function that needs arguments ({', '.join(required)}); "
                "name an Engine or a function that takes none and returns one",
                EXIT_USAGE,
            )
    try:
        return factory()
    except Exception as exc:
        raise CommandError(f"calling {target}() failed: {type(exc).__name__}: {exc}") from None
