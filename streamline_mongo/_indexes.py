"""Index definitions, and creating only the ones that are missing.

Every index has a fixed ``streamline_*`` name. :func:`ensure` reads
``index_information()`` first and creates only what is absent: mongomock
raises a false ``DuplicateKeyError`` when an identical partial unique index
is created twice, and on MongoDB it saves a round trip per index.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamline_core.errors import StoreError

from ._documents import KEY_HOLD
from ._errors import translated
from ._query import ACTIVE, TERMINAL
from ._types import Document, MongoCollection

__all__ = [
    "IndexSpec",
    "IDEMPOTENCY_INDEX",
    "CORE_INDEXES",
    "LISTING_INDEXES",
    "context_indexes",
    "ttl_index",
    "ensure",
]


@dataclass(frozen=True)
class IndexSpec:
    """One index: its name, keys and the options that change its meaning."""

    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False
    partial: Mapping[str, Any] | None = field(default=None, hash=False)
    expire_after_seconds: int | None = None

    def options(self) -> Document:
        """Keyword arguments for ``create_index``."""
        opts: Document = {"name": self.name}
        if self.unique:
            opts["unique"] = True
        if self.partial is not None:
            opts["partialFilterExpression"] = dict(self.partial)
        if self.expire_after_seconds is not None:
            opts["expireAfterSeconds"] = self.expire_after_seconds
        return opts

    def matches(self, info: Mapping[str, Any]) -> bool:
        """Whether an ``index_information()`` entry is this index (name aside)."""
        keys = tuple((str(k), _direction(d)) for k, d in info.get("key", ()))
        expire = info.get("expireAfterSeconds")
        return (
            keys == self.keys
            and bool(info.get("unique", False)) == self.unique
            and _plain(info.get("partialFilterExpression")) == _plain(self.partial)
            and (None if expire is None else int(expire)) == self.expire_after_seconds
        )


def _direction(value: Any) -> Any:
    # Servers may report 1.0 for 1; text/2d indexes report strings.
    return int(value) if isinstance(value, int | float) else value


def _plain(value: Any) -> Any:
    # The server hands back SON; compare as plain dicts and lists.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


IDEMPOTENCY_INDEX = IndexSpec(
    "streamline_idempotency",
    (("workflow_id", 1), ("tenant_id", 1), ("idempotency_key", 1)),
    unique=True,
    # Only runs that *hold* their key are indexed: created active with a key,
    # and not ended since (a transition to a terminal status unsets KEY_HOLD).
    # A run brought back to life by a transition (rewind) does not take the
    # key back, so that transition can never fail on a duplicate key: the
    # Store contract puts no idempotency rule on transitions. `create` looks
    # the active holder up itself, so such a run still wins later creates.
    # Equality on `true` and `$in` behave the same on MongoDB and mongomock;
    # `$exists`/`$type` would not (DESIGN.md §8). MongoDB accepts `$in` in a
    # partial filter from version 6.0.
    partial={KEY_HOLD: True, "status": {"$in": ACTIVE}},
)

CORE_INDEXES: tuple[IndexSpec, ...] = (
    IDEMPOTENCY_INDEX,
    # create(): the lookup of a key's active holder (which may not hold the key
    # in the unique index, see above), before and after the insert.
    IndexSpec(
        "streamline_idempotency_lookup",
        (("idempotency_key", 1), ("workflow_id", 1), ("tenant_id", 1)),
    ),
    # claim(): status $in, next_run_at range, then sort by priority in memory
    # (the due set is small; the range bounds skip null next_run_at).
    IndexSpec("streamline_claim", (("status", 1), ("next_run_at", 1), ("priority", -1))),
    # Engine(tenant_id=...) scopes every read and write by the top-level field.
    IndexSpec("streamline_tenant_status", (("tenant_id", 1), ("status", 1))),
    # emit_event(name): runs waiting on an event.
    IndexSpec("streamline_wait_event", (("wait.event", 1), ("status", 1))),
    # resume_hook(token): the run holding a hook token hash.
    IndexSpec("streamline_hook", (("wait.hook_token_hash", 1),)),
)
"""Indexes the engine's own operations need; created lazily on first use."""

LISTING_INDEXES: tuple[IndexSpec, ...] = (
    # UI listings: runs of one workflow, newest first (optionally by status).
    IndexSpec("streamline_workflow_created", (("workflow_id", 1), ("created_at", -1))),
    IndexSpec("streamline_workflow_status", (("workflow_id", 1), ("status", 1))),
    # Manual cleanup: delete(status=..., updated_before=...).
    IndexSpec("streamline_status_updated", (("status", 1), ("updated_at", 1))),
)
"""Indexes for listings and cleanup; created by ``ensure_indexes``."""


def _field_name(value: str, what: str) -> str:
    if not value or value.startswith("$") or "\x00" in value:
        raise ValueError(f"{what} must be a non-empty field name not starting with '$': {value!r}")
    return value


def context_indexes(
    tenant_field: str | None, user_field: str | None, context_fields: Iterable[str]
) -> list[IndexSpec]:
    """The original library's context indexes (``context.<name>``)."""
    specs: list[IndexSpec] = []
    if tenant_field is not None:
        path = f"context.{_field_name(tenant_field, 'tenant_field')}"
        specs.append(IndexSpec(f"streamline_tenant_{tenant_field}", ((path, 1), ("status", 1))))
    if user_field is not None:
        path = f"context.{_field_name(user_field, 'user_field')}"
        specs.append(IndexSpec(f"streamline_user_{user_field}", ((path, 1), ("created_at", -1))))
    if isinstance(context_fields, str):
        raise TypeError("context_fields must be a sequence of names, not one string")
    for name in context_fields:
        path = f"context.{_field_name(name, 'context field')}"
        specs.append(IndexSpec(f"streamline_context_{name}", ((path, 1),)))
    return specs


def ttl_index(days: float) -> IndexSpec:
    """TTL on ``ended_at``: only terminal runs have one, and the partial filter
    makes sure no active run ever expires even if one kept a stale ``ended_at``."""
    if days <= 0:
        raise ValueError(f"auto_cleanup_days must be positive, not {days!r}")
    return IndexSpec(
        "streamline_ttl_ended_at",
        (("ended_at", 1),),
        partial={"status": {"$in": TERMINAL}},
        expire_after_seconds=round(days * 86400),
    )


async def ensure(collection: MongoCollection, specs: Sequence[IndexSpec]) -> list[str]:
    """Create the indexes of ``specs`` that do not exist yet; returns the names created.

    An index is present when one with the same keys and options exists, under
    any name. A ``streamline_*`` index whose definition changed (say a new
    ``auto_cleanup_days``) is dropped and created again.
    """
    with translated("read the index list"):
        info = await collection.index_information()
    created: list[str] = []
    for spec in _unique_by_name(specs):
        if any(spec.matches(entry) for entry in info.values()):
            continue
        if spec.name in info:
            with translated(f"replace index {spec.name}"):
                await collection.drop_index(spec.name)
        try:
            with translated(f"create index {spec.name}"):
                await collection.create_index(list(spec.keys), **spec.options())
        except StoreError:
            # Another process (or store) may have created it meanwhile; on
            # mongomock that even surfaces as a false duplicate-key error.
            with translated("read the index list"):
                info = await collection.index_information()
            if any(spec.matches(entry) for entry in info.values()):
                continue
            raise
        created.append(spec.name)
    return created


def _unique_by_name(specs: Sequence[IndexSpec]) -> list[IndexSpec]:
    seen: dict[str, IndexSpec] = {}
    for spec in specs:
        seen.setdefault(spec.name, spec)
    return list(seen.values())
