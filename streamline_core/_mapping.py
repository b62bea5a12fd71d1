"""The in-step durable map behind ``ctx.map``: bounded concurrency, ordered results,
finished items saved in coalesced batches.

Contracts layer: imports ``_json`` and ``errors`` only. :func:`run_map` knows
nothing of stores: it hands each batch of finished items to ``save`` (the
step context writes it to the step's checkpoint). One writer at a time: the
items that finish while a write is in flight, or in the same event-loop
iteration, go out together in the next one.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from streamline_core._json import Unstorable, to_json_value
from streamline_core.errors import ValidationError

__all__ = ["fingerprint", "json_items", "run_map"]

Save = Callable[[dict[int, Any]], Awaitable[None]]


def json_items(items: Any, where: str) -> list[Any]:
    """``items`` as a list of JSON values.

    Raises:
        ValidationError: ``items`` is not iterable (a string or a mapping
            counts as a mistake too), or an item is not JSON-compatible.
    """
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise ValidationError(
            f"{where}: ctx.map needs an iterable of items (a list, tuple, generator...), "
            f"got {type(items).__name__}"
        )
    out = list(items)
    try:
        return [to_json_value(item, f"items[{i}]") for i, item in enumerate(out)]
    except Unstorable as exc:
        raise ValidationError(
            f"{where}: ctx.map got a {exc.type_name} at {exc.path}, which cannot be "
            "checkpointed (JSON-compatible values only)"
        ) from None


def fingerprint(items: list[Any]) -> str:
    """A short digest of the items: saved results are reused only for the same items."""
    text = json.dumps(items, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def run_map(
    fn: Callable[[Any], Any],
    items: list[Any],
    done: dict[int, Any],
    concurrency: int | None,
    save: Save,
    where: str,
) -> list[Any]:
    """``fn(item)`` for every item whose index is not in ``done``; results in input order.

    At most ``concurrency`` calls at once (all at once when ``None``). The
    first failure stops new calls; the calls in flight settle (their results
    are saved) and then the failure is raised.
    """
    todo = iter([i for i in range(len(items)) if i not in done])
    results = dict(done)
    pending: dict[int, Any] = {}
    wake = asyncio.Event()
    finished = False
    failures: list[BaseException] = []

    async def writer() -> None:
        while True:
            await wake.wait()
            wake.clear()
            await asyncio.sleep(0)  # let the rest of this iteration's results land
            if pending:
                batch = dict(pending)
                pending.clear()
                try:
                    await save(batch)
                except BaseException as exc:  # lease lost, store refused: stop the workers
                    failures.insert(0, exc)
                    raise
            if finished and not pending:
                return

    async def worker() -> None:
        for i in todo:
            if failures:
                return
            try:
                value = fn(items[i])
                if inspect.isawaitable(value):
                    value = await value
                stored = to_json_value(value, f"result[{i}]")
            except Unstorable as exc:
                failures.append(
                    ValidationError(
                        f"{where}: ctx.map got a {exc.type_name} at {exc.path} (the result "
                        f"of item {i}), which cannot be checkpointed (JSON-compatible values "
                        "only)"
                    )
                )
                return
            except Exception as exc:
                failures.append(exc)
                return
            results[i] = stored
            pending[i] = stored
            wake.set()

    left = len(items) - len(done)
    width = left if concurrency is None else min(concurrency, left)
    writing = asyncio.ensure_future(writer())
    try:
        await asyncio.gather(*(worker() for _ in range(width)))
        finished = True
        wake.set()
        await writing
    finally:
        if not writing.done():
            writing.cancel()
    if failures:
        raise failures[0]
    return [results[i] for i in range(len(items))]
