"""``Sweeper``: deletes finished runs past their retention age, archiving each batch first.

Parts layer: imports the runtime only. A started worker with
``Engine(retention=...)`` runs :meth:`Sweeper.run` on its own task;
``engine.runs.prune`` (and ``streamline runs prune``) call :meth:`prune`.

There is no leader: any number of workers may sweep the same store at once.
Each batch is read, handed to the ``streamline_archive`` hook, then deleted
by id *and* status *and* age, so a run rewound in between (active again) is
never deleted, and two workers deleting one batch delete it once. An archive
plugin may therefore see a batch twice when two workers sweep together
(at-least-once), never a run that was not deleted afterwards unless it failed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import timedelta

from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import StoreError
from streamline_core.run import RunStatus
from streamline_core.store import RunQuery

__all__ = ["Sweeper"]

log = logging.getLogger("streamline.retention")


class Sweeper:
    """Retention sweeps over one engine's tenant scope."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    async def prune(
        self,
        status: RunStatus,
        older_than: float,
        *,
        dry_run: bool = False,
        batch_size: int = 500,
        max_batches: int | None = None,
    ) -> int:
        """Delete (``dry_run``: count) ``status`` runs that ended over ``older_than`` s ago.

        Returns:
            How many runs were deleted (or would be).
        """
        rt = self._rt
        cutoff = rt.clock.now() - timedelta(seconds=older_than)
        if dry_run:
            return await rt.io.count(
                RunQuery(status=status, tenant_id=rt.tenant_id, updated_before=cutoff, limit=None)
            )
        deleted = batches = 0
        while max_batches is None or batches < max_batches:
            page = await rt.io.find(
                RunQuery(
                    status=status,
                    tenant_id=rt.tenant_id,
                    updated_before=cutoff,
                    sort="updated_at",
                    limit=batch_size,
                )
            )
            # A finished run is last written when it ends, so updated_at is its end.
            batch = page.items
            if not batch:
                break
            failures = await rt.plugins.archive(batch)
            if failures:
                await rt.events.emit("engine:error", error=failures[0])
                log.warning("an archive plugin failed: %d runs kept for the next sweep", len(batch))
                break
            deleted += await rt.io.delete(
                RunQuery(
                    run_ids=[r.id for r in batch],
                    status=status,
                    tenant_id=rt.tenant_id,
                    updated_before=cutoff,
                    limit=None,
                )
            )
            batches += 1
            if len(page.items) < batch_size:
                break
        if deleted:
            log.info("retention deleted %d %s runs", deleted, status.value)
        return deleted

    async def sweep(self) -> int:
        """One sweep of every status the engine's ``Retention`` names."""
        retention = self._rt.retention
        if retention is None:
            return 0
        total = 0
        for status, age in retention.ages().items():
            total += await self.prune(
                status, age, batch_size=retention.batch_size, max_batches=retention.max_batches
            )
        return total

    async def run(self) -> None:
        """Sweep every ``Retention.every`` seconds until cancelled (a worker's task)."""
        rt = self._rt
        retention = rt.retention
        if retention is None:
            return
        # Workers started together spread their sweeps over the interval.
        await rt.clock.sleep(random.uniform(0, retention.interval))
        while not rt.stopping:
            try:
                await self.sweep()
            except StoreError as exc:
                await rt.events.emit("scheduler:error", error=exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the sweep never takes the worker down
                log.exception("retention sweep failed")
                await rt.events.emit("engine:error", error=exc)
            await rt.clock.sleep(retention.interval)
