"""Claim rules every store shares: what a takeover is, and how a claimed batch is returned.

Contracts layer: imports ``errors`` and ``run``; the stores call it, the engine never does.

A store's ``claim`` reads candidates its own way (a query, an index scan, a
dict), leases each with one conditional write, and hands the documents it
leased to :func:`leased_runs`. These helpers keep the parts of the Store
contract that do not depend on the backend in one place, so a store cannot
get them subtly wrong: the recovery count on a takeover, the claim order of
the result, and a corrupt document that stays leased while the valid runs of
the same batch still reach the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from streamline_core.errors import DataCorruptionError
from streamline_core.run import RunStatus, WorkflowRun

__all__ = ["is_takeover", "claim_order", "leased_runs"]

T = TypeVar("T")


def is_takeover(status: Any, lease: Any) -> bool:
    """Whether leasing a claimable run with this ``status`` and ``lease`` is a recovery.

    A live lease is never claimable, so a lease still on a claimable run is
    an expired one; on a ``running`` run it means its worker died mid-step
    and the claim must also do ``recoveries + 1``.
    """
    return lease is not None and status in (RunStatus.RUNNING, RunStatus.RUNNING.value)


def claim_order(run: WorkflowRun) -> tuple[int, Any, str]:
    """Sort key of the claim order: priority descending, due time ascending, then id."""
    return (-run.priority, run.next_run_at, run.id)


def leased_runs(documents: Iterable[T], load: Callable[[T], WorkflowRun]) -> list[WorkflowRun]:
    """Load the documents one claim leased and return them in claim order.

    Args:
        documents: What the store's conditional writes returned, one per leased run.
        load: The store's document reader; raises ``DataCorruptionError`` for
            an invalid document.

    Raises:
        DataCorruptionError: for the first document that fails to load, after
            every document was tried. It stays leased (so no worker spins on
            it), and the valid runs of the batch are in the error's ``claimed``
            attribute, for the worker to drive.
    """
    runs: list[WorkflowRun] = []
    corrupt: list[DataCorruptionError] = []
    for document in documents:
        try:
            runs.append(load(document))
        except DataCorruptionError as exc:
            corrupt.append(exc)
    runs.sort(key=claim_order)
    if corrupt:
        corrupt[0].claimed = runs
        raise corrupt[0]
    return runs
