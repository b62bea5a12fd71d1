"""``from_url``: a store from a ``postgresql://`` or ``postgres://`` URL."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from streamline_core.errors import ValidationError

from .store import PostgresStore

__all__ = ["from_url"]

_SCHEMES = ("postgresql://", "postgres://")
# Ours; every other query parameter is libpq's (host, port, sslmode, ...).
_OPTIONS = {"table", "pool_min_size", "pool_max_size", "pool_timeout"}


def _redacted(url: str) -> str:
    # Never echo a password into an error message or a log line.
    return re.sub(r"://[^@/]*@", "://***@", url, count=1)


def from_url(url: str) -> PostgresStore:
    """A :class:`PostgresStore` for ``url`` (entry point ``streamline.stores``).

    ``postgresql://[user[:password]@][host][:port]/database[?params]`` (or
    ``postgres://``), libpq's URL form: ``?host=/run/postgresql`` for a unix
    socket, ``sslmode=``, ``connect_timeout=`` and the other libpq
    parameters pass through. Streamline's own parameters are taken out
    first: ``table`` (default ``workflow_runs``), ``pool_min_size``,
    ``pool_max_size`` and ``pool_timeout`` (seconds). Nothing connects until
    the first operation.

    Raises:
        ValidationError: Not a PostgreSQL URL, or a bad Streamline parameter.
    """
    if not url.startswith(_SCHEMES):
        raise ValidationError(f"not a PostgreSQL URL (postgresql://): {_redacted(url)}")
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in _OPTIONS}
    rest = [(k, v) for k, v in pairs if k not in _OPTIONS]
    dsn = urlunsplit(parts._replace(query=urlencode(rest)))
    try:
        return PostgresStore(
            dsn,
            table=ours.get("table", "workflow_runs"),
            min_size=int(ours.get("pool_min_size", "1")),
            max_size=int(ours.get("pool_max_size", "10")),
            timeout=float(ours.get("pool_timeout", "10")),
        )
    except ValueError as exc:
        raise ValidationError(f"bad PostgreSQL store URL {_redacted(url)}: {exc}") from None
