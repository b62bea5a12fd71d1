"""The two write loops: a worker's fenced commit, and a client's compare-and-set.

Parts layer: imports the runtime and reads. Every write is built as a
function of the current document. A worker's commit (:func:`commit`) is
fenced by its lease: when a client write (pause, cancel, a mailbox event)
bumped the revision meanwhile, it re-reads and rebuilds the patch if the run
is still its own, and drops the result otherwise. A client's write
(:func:`cas`) re-reads and rebuilds until it lands; a ``ConflictError`` never
reaches a caller.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import streamline_core._patches as P
from streamline_core._runtime.inflight import RunState
from streamline_core._runtime.reads import Reads
from streamline_core._runtime.runtime import Runtime
from streamline_core.errors import (
    ConflictError,
    DataCorruptionError,
    InvalidStateError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
    WorkflowError,
    WorkflowNotFoundError,
)
from streamline_core.run import WorkflowRun

__all__ = ["Dropped", "Refused", "Patch", "commit", "cas", "release_quietly"]

Patch = dict[str, Any]

_CAS_ATTEMPTS = 50


class Dropped(Exception):
    """The run is no longer ours to write (terminal, lease gone, rewound)."""


class Refused(Exception):
    """The store refused the write for what it holds (too big, too deep, invalid).

    Retrying the same write cannot help: the step's outcome must change (it fails).
    """

    def __init__(self, error: WorkflowError) -> None:
        super().__init__(str(error))
        self.error = error


async def commit(
    rt: Runtime,
    state: RunState,
    build: Callable[[WorkflowRun], Patch | None],
    step_id: str | None = None,
) -> WorkflowRun:
    """Write ``build(current run)`` with CAS + fencing; re-read and rebuild on conflict.

    With ``step_id``, the write is the outcome of that step: it is dropped
    if the run's cursor has moved away from it meanwhile (a rewind).

    Each write against one revision carries one write id, repeated when the
    store was unavailable: if the first attempt was applied but its answer
    lost, the store recognises the repeat and returns the run as stored
    (instead of a conflict that would drop the step's result).

    Raises:
        Dropped: the run is no longer this worker's to write.
    """
    run = state.run
    backoff = 0.05
    write_id: str | None = None
    while True:
        if state.cancel_reason is not None:
            raise Dropped()  # cancelled, rewound or lost meanwhile: not ours to write
        if step_id is not None and run.current_step_id != step_id:
            raise Dropped()
        patch = build(run)
        if patch is None:
            raise Dropped()
        if write_id is None:
            write_id = os.urandom(12).hex()  # unique per write; cheaper than a uuid4
        try:
            new = await rt.io.transition(
                run.id, run.revision, patch, owner=rt.worker_id, write_id=write_id
            )
        except ConflictError:
            write_id = None  # the next attempt is another write, on another revision
            current = await rt.io.get(run.id)
            if (
                current is None
                or current.is_terminal
                or current.lease is None
                or current.lease.owner != rt.worker_id
                or current.epoch != state.epoch  # rewound meanwhile: this result is stale
            ):
                if current is not None:
                    state.run = current
                raise Dropped() from None
            run = current
            continue
        except WorkflowNotFoundError:
            raise Dropped() from None
        except (ValidationError, DataCorruptionError) as exc:
            raise Refused(exc) from exc
        except StoreUnavailableError as exc:
            rt.counters.store_errors += 1
            if rt.clock.now() >= state.lease_expires:
                raise Dropped() from exc
            await rt.events.emit("scheduler:error", run_id=run.id, error=exc)
            await rt.clock.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
            continue
        state.run = new
        rt.counters.commits += 1
        if new.lease is not None and new.lease.owner == rt.worker_id:
            state.lease_expires = new.lease.expires_at
        return new


async def cas(
    rt: Runtime,
    reads: Reads,
    run_id: str,
    workflow_id: str | None,
    build: Callable[[WorkflowRun], Patch],
) -> WorkflowRun:
    """Read, build a patch (which may raise a domain error), write; retry on conflict.

    Raises:
        WorkflowNotFoundError: unknown or out of scope.
        InvalidStateError: the run kept changing for every attempt.
    """
    for _ in range(_CAS_ATTEMPTS):
        run = await reads.require(run_id, workflow_id)
        patch = build(run)
        try:
            return await rt.io.transition(run.id, run.revision, patch)
        except ConflictError:
            await asyncio.sleep(0)
            continue
    raise InvalidStateError(
        f"run {run_id!r} kept changing while being updated; try again", run_id=run_id
    )


async def release_quietly(rt: Runtime, run: WorkflowRun) -> None:
    """Give up this worker's lease on ``run`` if it still holds one (errors ignored)."""
    try:
        current = await rt.io.get(run.id)
        if (
            current is not None
            and not current.is_terminal
            and current.lease is not None
            and current.lease.owner == rt.worker_id
        ):
            await rt.io.transition(
                current.id,
                current.revision,
                P.release(current, rt.clock.now()),
                owner=rt.worker_id,
            )
    except StoreError:
        pass
