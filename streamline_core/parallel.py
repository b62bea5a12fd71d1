"""``execute_parallel``: run several awaitables at once inside a step.

Model layer: imports only ``errors``; used inside step handlers.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from streamline_core.errors import ValidationError

__all__ = ["Settled", "ParallelMode", "execute_parallel"]

ParallelMode: TypeAlias = Literal["all", "race", "any", "all_settled"]
Task: TypeAlias = Callable[[], Awaitable[Any]] | Awaitable[Any]


@dataclass(frozen=True)
class Settled:
    """Outcome of one task under ``mode="all_settled"``.

    Attributes:
        status: ``"fulfilled"`` or ``"rejected"``.
        value: The result, when fulfilled.
        error: The exception, when rejected.
    """

    status: Literal["fulfilled", "rejected"]
    value: Any = None
    error: BaseException | None = None


def _start(task: Task) -> asyncio.Future[Any]:
    aw = task() if callable(task) and not inspect.isawaitable(task) else task
    if not inspect.isawaitable(aw):
        raise ValidationError(f"execute_parallel: {task!r} did not give an awaitable")
    return asyncio.ensure_future(aw)


async def _cancel(futs: Sequence[asyncio.Future[Any]]) -> None:
    for f in futs:
        f.cancel()
    await asyncio.gather(*futs, return_exceptions=True)


async def execute_parallel(
    tasks: Sequence[Task],
    mode: ParallelMode = "all",
    *,
    concurrency: int | None = None,
) -> Any:
    """Run ``tasks`` concurrently.

    Args:
        tasks: Zero-argument callables returning awaitables (``lambda: fetch(a)``),
            or awaitables.
        mode: ``"all"`` — every result, in order; the first failure cancels the
            rest and is raised. ``"race"`` — the first task to finish decides
            (its result or its exception); the rest are cancelled. ``"any"`` —
            the first success; if all fail, an ``ExceptionGroup`` of every error.
            ``"all_settled"`` — a :class:`Settled` per task, in order, never raises.
        concurrency: At most this many tasks run at once (``None``: all).
    """
    if mode not in ("all", "race", "any", "all_settled"):
        raise ValidationError(f"execute_parallel: unknown mode {mode!r}")
    if concurrency is not None and concurrency < 1:
        raise ValidationError("execute_parallel: concurrency must be >= 1")
    if not tasks:
        if mode in ("race", "any"):
            raise ValidationError(f"execute_parallel: mode {mode!r} needs at least one task")
        return []
    if concurrency is not None:
        sem = asyncio.Semaphore(concurrency)

        def limited(t: Task) -> Callable[[], Awaitable[Any]]:
            async def run() -> Any:
                async with sem:
                    return await _start(t)

            return run

        tasks = [limited(t) for t in tasks]
    futs = [_start(t) for t in tasks]
    try:
        if mode == "all":
            return list(await asyncio.gather(*futs))
        if mode == "all_settled":
            await asyncio.wait(futs)
            return [
                Settled("rejected", error=f.exception())
                if f.exception() is not None
                else Settled("fulfilled", value=f.result())
                for f in futs
            ]
        if mode == "race":
            done, _ = await asyncio.wait(futs, return_when=asyncio.FIRST_COMPLETED)
            # Several may end in one loop iteration: the earliest in input order wins,
            # so the outcome does not depend on set order.
            return next(f for f in futs if f in done).result()
        pending = set(futs)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for f in done:
                if f.exception() is None:
                    return f.result()
        raise ExceptionGroup(
            "execute_parallel(mode='any'): every task failed",
            [e for f in futs if isinstance(e := f.exception(), Exception)],
        )
    finally:
        await _cancel([f for f in futs if not f.done()])
        for f in futs:  # losers' errors are settled here, never "exception was never retrieved"
            if not f.cancelled():
                f.exception()
