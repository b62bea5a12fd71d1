"""Store selection by URL: schemes come from the ``streamline.stores`` entry-point group.

Model layer: imports only ``errors``; the engine façade resolves its store with it.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

from streamline_core.errors import ValidationError

__all__ = ["DEFAULT_STORE_URL", "STORE_ENV", "store_from_url", "resolve_store_url"]

DEFAULT_STORE_URL = "sqlite:///./streamline.db"
STORE_ENV = "STREAMLINE_STORE"


def resolve_store_url(url: str | None) -> str:
    """``url``, else ``$STREAMLINE_STORE``, else the embedded SQLite default."""
    return url or os.environ.get(STORE_ENV) or DEFAULT_STORE_URL


def store_from_url(url: str) -> Any:
    """Build a store for ``url`` with the factory registered for its scheme."""
    scheme, sep, _ = url.partition("://")
    if not sep or not scheme:
        raise ValidationError(
            f"store URL {url!r} has no scheme; use e.g. 'sqlite:///path.db', 'memory://' or "
            "'mongodb://host/db'"
        )
    factories = {ep.name: ep for ep in entry_points(group="streamline.stores")}
    ep = factories.get(scheme.lower())
    if ep is None:
        known = ", ".join(sorted(f"{n}://" for n in factories)) or "none installed"
        raise ValidationError(f"no store for scheme {scheme!r} (known: {known})")
    try:
        factory = ep.load()
    except ImportError as exc:
        raise ValidationError(
            f"the store for {scheme}:// needs an extra: {exc} "
            f"(install e.g. 'streamline[mongo]' for mongodb://)"
        ) from None
    return factory(url)
