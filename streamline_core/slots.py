"""The flow-control claim (``claim_limited``): its full contract, and a helper for stores.

Contracts layer: imports ``run`` and ``store``; the stores implement it, the
engine calls it for workflows declared with ``concurrency=`` or ``rate_limit=``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from streamline_core.run import WorkflowRun
from streamline_core.store import WorkflowFilter

__all__ = ["LimitedClaims", "SlotBook"]


@runtime_checkable
class LimitedClaims(Protocol):
    """A store that can enforce per-key concurrency and rate limits strictly.

    ``claim_limited`` is ``claim`` (same arguments, claimable conditions,
    claim order, lease, ``revision + 1``, recovery count and corrupt-document
    report) restricted to *limited* runs — runs whose ``concurrency_key`` or
    ``rate_key`` is set — with ``run_id`` narrowing it to one run. Plain
    ``claim`` never leases a limited run. On top, atomically with the leases
    it grants (strict across every connection and process of the store: a
    count read and a lease written later is the bug this forbids):

    1. **Revocation.** Every *expired* lease (``expires_at <= now``) of a run
       with a ``concurrency_key`` is removed first: ``lease = null``,
       ``revision + 1``, and ``recoveries + 1`` when the run is ``running``
       (the takeover it stands for). Its owner can then never heartbeat or
       commit it back to life once its slot was counted free. (For these
       runs only, this narrows the rule that the owner of an expired lease
       nobody took over may still heartbeat and commit.)
    2. **Slots.** A run's bucket is ``(workflow_id, concurrency_key)``. A run
       holds a slot while its lease is live (``expires_at > now``), whatever
       its status. A run with a ``concurrency_key`` is leased only while
       fewer than its ``concurrency_limit`` runs of its bucket hold one; the
       runs leased by this very call count. So at no ``now`` do more than
       ``limit`` runs of a bucket hold a live lease.
    3. **Rate windows.** A run with a ``rate_key`` and no ``began_at`` is
       leased only while fewer than its ``rate_limit`` runs of
       ``(workflow_id, rate_key)`` have ``began_at`` in ``(now -
       rate_period, now]`` (this call's leases included); leasing a run
       without ``began_at`` sets ``began_at = now``. A run that has begun is
       never rate-limited again.
    4. **No blocking.** A run that cannot be leased now is skipped (it stays
       claimable, nothing is written to it) and the next one in claim order
       is considered, so a full bucket never holds back another bucket.

    The engine never leases a limited run by any other write (``create``
    stores it unleased, client writes hand it no lease), so these rules are
    the whole guarantee. An engine refuses to register a limited workflow on
    a store without this operation.
    """

    async def claim_limited(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: WorkflowFilter,
        tenant_id: str | None = None,
        run_id: str | None = None,
    ) -> list[WorkflowRun]:
        """Lease up to ``limit`` limited runs, within their slots and rate windows."""
        ...


class SlotBook:
    """The admission decisions of one ``claim_limited`` call, for stores that decide in code.

    The store walks its claimable limited runs in claim order inside one
    atomic unit (a transaction, a lock, one event-loop step) and asks
    :meth:`admit` of each; counts are read once per bucket through the
    callbacks, then kept up to date with this call's own admissions.

    Args:
        now: The claim's ``now``.
        live: ``live(workflow_id, concurrency_key)``: runs of that bucket holding a
            live lease at ``now`` (after the revocation).
        begun: ``begun(workflow_id, rate_key, since)``: runs of that rate bucket
            with ``since < began_at <= now``.
    """

    def __init__(
        self,
        now: datetime,
        live: Callable[[str, str], int],
        begun: Callable[[str, str, datetime], int],
    ) -> None:
        self.now = now
        self._live_of = live
        self._begun_of = begun
        self._live: dict[tuple[str, str], int] = {}
        self._begun: dict[tuple[str, str], int] = {}

    def admit(self, doc: Mapping[str, Any]) -> bool:
        """Whether the run ``doc`` (a run document) may be leased now; counts it if so."""
        wf: str = doc["workflow_id"]
        ck: str | None = doc.get("concurrency_key")
        cbucket = (wf, ck) if ck is not None else None
        if cbucket is not None:
            if cbucket not in self._live:
                self._live[cbucket] = self._live_of(*cbucket)
            if self._live[cbucket] >= (doc.get("concurrency_limit") or 1):
                return False
        rk: str | None = doc.get("rate_key")
        rbucket = (wf, rk) if rk is not None and doc.get("began_at") is None else None
        if rbucket is not None:
            if rbucket not in self._begun:
                since = self.now - timedelta(seconds=float(doc.get("rate_period") or 0.0))
                self._begun[rbucket] = self._begun_of(*rbucket, since)
            if self._begun[rbucket] >= (doc.get("rate_limit") or 1):
                return False
        if cbucket is not None:
            self._live[cbucket] += 1
        if rbucket is not None:
            self._begun[rbucket] += 1
        return True
