"""The reference model: the Store contract re-stated over plain dicts.

Written from the contract in ``streamline_core.store``'s docstring, clause by
clause, without reusing any store's code (not ``InMemoryStore``, not
``apply_patch`` or ``matches_query``): if both a store and a shared helper
were wrong in the same way, comparing them would prove nothing.

A run is a plain document: the ``dict`` ``WorkflowRun.model_dump()`` would give
(statuses as plain strings). The model holds ``{run_id: document}``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from streamline_core.store import UNSET, RunQuery

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "Doc",
    "active_with_key",
    "apply_patch_to_doc",
    "claim_order",
    "claimable",
    "expected_claim",
    "matches",
    "ordered",
    "take_lease",
]

Doc = dict[str, Any]

ACTIVE = frozenset({"draft", "running", "waiting"})
TERMINAL = frozenset({"done", "failed", "cancelled"})


def active_with_key(
    docs: Iterable[Doc], workflow_id: str, tenant_id: str | None, key: str | None
) -> dict[str, Doc]:
    """The active runs holding ``key`` for ``(workflow_id, tenant_id)``, by id.

    Usually none or one; more only where a store let a transition bring a
    run holding a taken key back to an active status (the contract allows it).
    """
    if key is None:
        return {}
    return {
        doc["id"]: doc
        for doc in docs
        if doc["idempotency_key"] == key
        and doc["workflow_id"] == workflow_id
        and doc["tenant_id"] == tenant_id
        and doc["status"] in ACTIVE
    }


def claimable(
    doc: Doc,
    now: datetime,
    workflows: Collection[str] | Mapping[str, Collection[str]],
    tenant_id: str | None,
) -> bool:
    """Every condition of the contract's "claimable", in the contract's order."""
    lease = doc["lease"]
    return (
        doc["status"] in ACTIVE
        and doc["next_run_at"] is not None
        and doc["next_run_at"] <= now
        and not doc["paused"]
        and (lease is None or lease["expires_at"] <= now)
        and (
            doc["workflow_version"] in workflows.get(doc["workflow_id"], ())
            if isinstance(workflows, Mapping)
            else doc["workflow_id"] in workflows
        )
        and (tenant_id is None or doc["tenant_id"] == tenant_id)
    )


def claim_order(doc: Doc) -> tuple[int, datetime, str]:
    """Sort key of claims: priority descending, then due time, then id."""
    return (-doc["priority"], doc["next_run_at"], doc["id"])


def expected_claim(
    docs: Iterable[Doc],
    now: datetime,
    limit: int,
    workflows: Collection[str] | Mapping[str, Collection[str]],
    tenant_id: str | None,
) -> list[Doc]:
    """The runs a claim must return, in order."""
    candidates = sorted(
        (d for d in docs if claimable(d, now, workflows, tenant_id)), key=claim_order
    )
    return candidates[: max(limit, 0)]


def take_lease(doc: Doc, worker: str, now: datetime, lease_for: float) -> None:
    """Apply a claim to ``doc``: lease, revision + 1, recovery on a running takeover."""
    if doc["lease"] is not None and doc["status"] == "running":
        doc["recoveries"] += 1
    doc["lease"] = {"owner": worker, "expires_at": now + timedelta(seconds=lease_for)}
    doc["revision"] += 1


def apply_patch_to_doc(doc: Doc, patch: Mapping[str, Any]) -> None:
    """Apply a transition patch to ``doc`` (the contract's "Patches" section)."""
    for path, value in patch.items():
        head, _, rest = path.partition(".")
        if not rest:
            doc[head] = _copy(value)
        elif head == "steps":
            index, _, field = rest.partition(".")
            if field:
                doc["steps"][int(index)][field] = _copy(value)
            else:
                doc["steps"][int(index)] = _copy(value)
        else:
            target = doc[head]
            if value is UNSET:
                target.pop(rest, None)
            else:
                target[rest] = _copy(value)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _one_or_many(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def matches(doc: Doc, query: RunQuery) -> bool:
    """Whether ``doc`` passes every filter set on ``query`` (limit, sort, cursor aside)."""
    workflows = _one_or_many(query.workflow_id)
    statuses = _one_or_many(query.status)
    checks = [
        workflows is None or doc["workflow_id"] in workflows,
        statuses is None or doc["status"] in statuses,
        query.tenant_id is None or doc["tenant_id"] == query.tenant_id,
        query.run_ids is None or doc["id"] in list(query.run_ids),
        query.created_after is None or doc["created_at"] >= query.created_after,
        query.created_before is None or doc["created_at"] < query.created_before,
        query.updated_before is None or doc["updated_at"] < query.updated_before,
    ]
    for field, wanted in (("meta", query.meta), ("context", query.context)):
        for key, value in (wanted or {}).items():
            checks.append(key in doc[field] and doc[field][key] == value)
    wait = doc["wait"]
    if query.waiting_for_event is not None:
        checks.append(
            doc["status"] == "waiting"
            and wait is not None
            and wait["kind"] == "event"
            and wait["event"] == query.waiting_for_event
        )
    if query.hook_token_hash is not None:
        checks.append(wait is not None and wait["hook_token_hash"] == query.hook_token_hash)
    if query.idempotency_key is not None:
        checks.append(doc["idempotency_key"] == query.idempotency_key)
    if query.parent_run_id is not None:
        checks.append(doc.get("parent_run_id") == query.parent_run_id)
    return all(checks)


def ordered(docs: Iterable[Doc], query: RunQuery) -> list[Doc]:
    """The runs ``find`` must return for ``query`` across all its pages, in order."""
    field = query.sort.lstrip("-")
    descending = query.sort.startswith("-")
    hits = [d for d in docs if matches(d, query)]
    return sorted(hits, key=lambda d: (d[field], d["id"]), reverse=descending)
