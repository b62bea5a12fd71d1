"""Flow control on the engine's side: keys at ``start``, and which claim leases which runs.

Bottom of the runtime: imports the workflow spec, the run model and errors.
The store enforces the limits (``claim_limited``, see
:mod:`streamline_core.store`); the engine's part is to compute a run's keys
once, store them on the run, and never lease a limited run any other way: a
limited run is created unleased, client writes (resume, unpause, rewind) hand
it no local lease, and ``execute`` leases it through ``claim_limited``.
"""

from __future__ import annotations

from typing import Any

from streamline_core.errors import ValidationError
from streamline_core.workflow_spec import WorkflowSpec

__all__ = ["supports_limits", "check_supported", "run_limits"]


def supports_limits(store: Any) -> bool:
    """Whether ``store`` implements the flow-control operation ``claim_limited``."""
    try:
        return callable(getattr(store, "claim_limited", None))
    except Exception:  # a store proxy that raises on unknown attributes
        return False


def check_supported(spec: WorkflowSpec, supported: bool) -> None:
    """Refuse a flow-controlled workflow on a store that cannot enforce it.

    Raises:
        ValidationError: ``spec`` has a concurrency or rate limit and the store
            has no ``claim_limited``; a best-effort limit is never applied.
    """
    if spec.limited and not supported:
        option = "concurrency" if spec.concurrency is not None else "rate_limit"
        raise ValidationError(
            f"workflow {spec.name!r} uses {option}=, but this store does not implement the "
            "flow-control claim (Store.claim_limited), so the limit could not be enforced "
            "strictly; use a store that does (memory, SQLite, PostgreSQL, MongoDB)"
        )


def run_limits(spec: WorkflowSpec, value: Any) -> dict[str, Any]:
    """The flow-control fields of a new run of ``spec`` whose input is ``value``.

    Raises:
        ValidationError: a key function failed or returned a non-string.
    """
    fields: dict[str, Any] = {}
    if spec.concurrency is not None:
        fields["concurrency_key"] = spec.concurrency.key_for(value)
        fields["concurrency_limit"] = spec.concurrency.limit
    if spec.rate_limit is not None:
        fields["rate_key"] = spec.rate_limit.key_for(value)
        fields["rate_limit"] = spec.rate_limit.limit
        fields["rate_period"] = spec.rate_limit.period_seconds
    return fields
