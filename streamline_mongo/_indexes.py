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

from ._documents import ACTIVE_MARK, KEY_HOLD
from ._errors import translated
from ._query import ACTIVE, TERMINAL
from ._types import Document, MongoCollection

__all__ = [
    "IndexSpec",
    "IDEMPOTENCY_INDEX",
    "CLAIM_FREE_INDEX",
    "CLAIM_EXPIRED_INDEX",
    "RETIRED",
    "mark_active",
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

    def matches_but_ttl(self, info: Mapping[str, Any]) -> bool:
        """Whether ``info`` is this index with another TTL period (``collMod`` can fix that)."""
        expire = info.get("expireAfterSeconds")
        return (
            self.expire_after_seconds is not None
            and expire is not None
            and IndexSpec(self.name, self.keys, self.unique, self.partial, int(expire)).matches(
                info
            )
        )

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
    "streamline_idempotency_held",
    (("workflow_id", 1), ("tenant_id", 1), ("idempotency_key", 1)),
    unique=True,
    # Only runs that *hold* their key are indexed: created active with a key,
    # and not ended since (a transition to a terminal status unsets KEY_HOLD,
    # so the marker alone says "active holder"). A run brought back to life
    # by a transition (rewind) does not take the key back, so that transition
    # can never fail on a duplicate key: the Store contract puts no
    # idempotency rule on transitions. `create` looks the active holder up
    # itself, so such a run still wins later creates.
    # Equality on `true` reads the same on every MongoDB version, on Amazon
    # DocumentDB and on mongomock; `$in` in a partial filter needs feature
    # compatibility 6.0 and DocumentDB refuses it, and mongomock mis-handles
    # `$exists`/`$type` filters (DESIGN.md §8).
    partial={KEY_HOLD: True},
)

CLAIM_FREE_INDEX = IndexSpec(
    "streamline_claim_free",
    # claim(): `lease: null` is an equality on the first key, so runs leased
    # to a live worker sit outside the scanned range; the rest of the keys are
    # the claim order itself, so the sort needs no in-memory stage and the
    # scan stops after `limit` due runs. Only active runs are in the index.
    (("lease", 1), ("priority", -1), ("next_run_at", 1), ("_id", 1)),
    partial={ACTIVE_MARK: True},
)

CLAIM_EXPIRED_INDEX = IndexSpec(
    "streamline_claim_expired",
    # claim(): leases that expired (dead workers, released-too-late runs);
    # live leases expire in the future, so they are outside the range.
    (("lease.expires_at", 1),),
    partial={ACTIVE_MARK: True},
)

CORE_INDEXES: tuple[IndexSpec, ...] = (
    IDEMPOTENCY_INDEX,
    # create(): the lookup of a key's active holder (which may not hold the key
    # in the unique index, see above), before and after the insert.
    IndexSpec(
        "streamline_idempotency_lookup",
        (("idempotency_key", 1), ("workflow_id", 1), ("tenant_id", 1)),
    ),
    CLAIM_FREE_INDEX,
    CLAIM_EXPIRED_INDEX,
    # Engine(tenant_id=...) scopes every read and write by the top-level field.
    IndexSpec("streamline_tenant_status", (("tenant_id", 1), ("status", 1))),
    # emit_event(name): runs waiting on an event.
    IndexSpec("streamline_wait_event", (("wait.event", 1), ("status", 1))),
    # resume_hook(token): the run holding a hook token hash.
    IndexSpec("streamline_hook", (("wait.hook_token_hash", 1),)),
    # Joins and cancel cascades: a run's children.
    IndexSpec("streamline_parent", (("parent_run_id", 1), ("status", 1))),
    # claim_limited: one run per slot token and per rate token (see _limits).
    # Created with the others, before the first insert: mongomock checks a new
    # unique index over every document, ignoring its partial filter.
    IndexSpec("streamline_slot", (("slot", 1),), unique=True, partial={"slot": {"$gt": ""}}),
    IndexSpec(
        "streamline_rate_slot", (("rate_slot", 1),), unique=True, partial={"rate_slot": {"$gt": ""}}
    ),
)
"""Indexes the engine's own operations need; created lazily on first use."""

LISTING_INDEXES: tuple[IndexSpec, ...] = (
    # Listings sort by (field, _id) in one direction (the id breaks ties for
    # keyset paging), so each index ends with _id in that direction: the
    # server walks it in order instead of sorting in memory.
    IndexSpec("streamline_created_id", (("created_at", -1), ("_id", -1))),
    IndexSpec("streamline_updated_id", (("updated_at", -1), ("_id", -1))),
    # UI listings: runs of one workflow, newest first (optionally by status).
    IndexSpec(
        "streamline_workflow_created_id", (("workflow_id", 1), ("created_at", -1), ("_id", -1))
    ),
    IndexSpec(
        "streamline_workflow_status_created_id",
        (("workflow_id", 1), ("status", 1), ("created_at", -1), ("_id", -1)),
    ),
    # Manual cleanup: delete(status=..., updated_before=...).
    IndexSpec("streamline_status_updated_id", (("status", 1), ("updated_at", 1), ("_id", 1))),
)
"""Indexes for listings and cleanup; created by ``ensure_indexes``."""

RETIRED: dict[str, str] = {
    "streamline_idempotency": IDEMPOTENCY_INDEX.name,
    "streamline_claim": CLAIM_FREE_INDEX.name,
    "streamline_workflow_created": "streamline_workflow_created_id",
    "streamline_workflow_status": "streamline_workflow_status_created_id",
    "streamline_status_updated": "streamline_status_updated_id",
    "streamline_ttl_ended_at": "streamline_ttl_ended",
}
"""Indexes of earlier versions -> the index that replaces each. A retired index
is dropped only once its replacement exists, so an upgrade never goes through
a moment without (for instance) the unique idempotency index."""


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
        "streamline_ttl_ended",
        (("ended_at", 1),),
        partial={ACTIVE_MARK: False},
        expire_after_seconds=round(days * 86400),
    )


async def ensure(
    collection: MongoCollection,
    specs: Sequence[IndexSpec],
    *,
    create: bool = True,
    commit_quorum: int | str | None = None,
) -> list[str]:
    """Create the indexes of ``specs`` that do not exist yet; returns the names created.

    An index is present when one with the same keys and options exists, under
    any name. A ``streamline_*`` index whose TTL period changed is altered in
    place with ``collMod`` (no rebuild); any other change of definition
    (keys, filter) comes with a new name, and the index it replaces is
    dropped only after the new one exists (:data:`RETIRED`).

    Args:
        collection: The runs collection.
        specs: The indexes wanted.
        create: ``False`` only checks: missing indexes are reported, none is
            created or dropped (for a database user without index privileges).
        commit_quorum: ``commitQuorum`` of each index build on a replica set
            (how many data-bearing members must finish it), when given.

    Raises:
        StoreError: ``create=False`` and some indexes are missing.
    """
    with translated("read the index list"):
        info = await collection.index_information()
    created: list[str] = []
    missing: list[str] = []
    for spec in _unique_by_name(specs):
        if any(spec.matches(entry) for entry in info.values()):
            continue
        if not create:
            missing.append(spec.name)
            continue
        existing = info.get(spec.name)
        if (
            existing is not None
            and spec.matches_but_ttl(existing)
            and await _alter_ttl(collection, spec)
        ):
            created.append(spec.name)
            continue
        if existing is not None:
            # Changed in a way collMod cannot apply (only a user's own edit
            # of a streamline_* index gets here): rebuild it.
            with translated(f"replace index {spec.name}"):
                await collection.drop_index(spec.name)
        options = spec.options()
        if commit_quorum is not None:
            options["commitQuorum"] = commit_quorum
        try:
            with translated(f"create index {spec.name}"):
                await collection.create_index(list(spec.keys), **options)
        except StoreError:
            # Another process (or store) may have created it meanwhile; on
            # mongomock that even surfaces as a false duplicate-key error.
            with translated("read the index list"):
                info = await collection.index_information()
            if any(spec.matches(entry) for entry in info.values()):
                continue
            raise
        created.append(spec.name)
    if missing:
        raise StoreError(
            "MongoDB configuration problem: the runs collection lacks the indexes "
            f"{', '.join(missing)} and this store was told not to create them "
            "(auto_indexes=False). Create them once with a user allowed to, e.g. "
            "`await MongoStore(db).ensure_indexes()` from a deploy job (docs/mongo.md)."
        )
    if create:
        await _retire(collection, set(info), set(info) | set(created))
    return created


async def _alter_ttl(collection: MongoCollection, spec: IndexSpec) -> bool:
    """Change a TTL index's period in place; ``False`` where ``collMod`` is unavailable."""
    database = getattr(collection, "database", None)
    command = getattr(database, "command", None)
    name = getattr(collection, "name", None)
    if command is None or not isinstance(name, str):
        return False
    try:
        with translated(f"change the TTL of index {spec.name}"):
            await command(
                {
                    "collMod": name,
                    "index": {"name": spec.name, "expireAfterSeconds": spec.expire_after_seconds},
                }
            )
    except (NotImplementedError, TypeError):
        return False  # mongomock implements no collMod: rebuild instead
    return True


async def _retire(collection: MongoCollection, before: set[str], present: set[str]) -> None:
    for old, replacement in RETIRED.items():
        if old in before and replacement in present:
            with translated(f"drop the retired index {old}"):
                await collection.drop_index(old)


async def mark_active(collection: MongoCollection) -> None:
    """Give runs written before the ``is_active`` marker existed their marker.

    The claim and TTL indexes filter on it, and so does the claim query; a
    run without it would never be claimed. Cheap on a collection where every
    run has it (the filter matches nothing); run once per store start.
    """
    for value, statuses in ((True, ACTIVE), (False, TERMINAL)):
        with translated("add the is_active marker to older runs"):
            await collection.update_many(
                {ACTIVE_MARK: {"$exists": False}, "status": {"$in": statuses}},
                {"$set": {ACTIVE_MARK: value}},
            )


def _unique_by_name(specs: Sequence[IndexSpec]) -> list[IndexSpec]:
    seen: dict[str, IndexSpec] = {}
    for spec in specs:
        seen.setdefault(spec.name, spec)
    return list(seen.values())
