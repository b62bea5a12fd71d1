"""Store calls per start for debounce, triggers and cancel_on, on each shipped store.

``python -m benchmarks.flow_events [runs]`` prints JSON. A ``CountingStore``
counts calls a client engine makes (``writes`` = create + transition +
claimed runs, ``reads`` = get + find + count); the counts do not depend on
timing, so one pass per store. Scenarios, each ``runs`` times:

* ``plain_start``: ``start`` of a workflow without these options (the baseline);
* ``debounce_first``: a start that creates its bucket's pending run;
* ``debounce_fold``: a start folded into the pending run (a ``create`` that
  inserts nothing and returns the holder, then one compare-and-set);
* ``debounce_after_begin``: a start after the pending run began (the begun
  run gives its key up, then the new pending run is created);
* ``emit_untriggered``: a broadcast no workflow triggers or cancels on;
* ``emit_trigger``: a broadcast that starts one triggered run;
* ``emit_cancel_on``: a broadcast that cancels one run by ``cancel_on``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from benchmarks.stores import CountingStore, memory, mongo_factory, sqlite_factory
from streamline_core import Debounce, Engine, StepContext
from streamline_core.store import Store
from streamline_testing import FakeClock

STORES = ("memory", "sqlite", "mongo")
_LATER = timedelta(seconds=60)  # past every pending run's due time


async def _hold(ctx: StepContext) -> None:
    await ctx.wait("hold")


def _context(value: Any) -> dict[str, Any]:
    return {"account": value["account"]} if isinstance(value, dict) else {}


async def _measure(make_store: Callable[[], Store], runs: int) -> dict[str, Any]:
    store = CountingStore(make_store())
    clock = FakeClock()
    engine = Engine(store, clock=clock, load_entry_point_plugins=False)
    plain = engine.workflow("plain", steps={"s": _hold}, context=_context)
    debounced = engine.workflow(
        "debounced",
        steps={"s": _hold},
        debounce=Debounce(10, key=lambda i: i["account"]),
    )
    engine.workflow("triggered", steps={"s": _hold}, trigger="go")
    engine.workflow(
        "cancellable", steps={"s": _hold}, context=_context, cancel_on={"gone": "account"}
    )
    cancellable = engine.get_workflow("cancellable")
    out: dict[str, Any] = {}

    async def count(
        name: str,
        setup: Callable[[int], Awaitable[Any]] | None,
        act: Callable[[int], Awaitable[Any]],
    ) -> None:
        writes = reads = 0
        for i in range(runs):
            if setup is not None:
                await setup(i)
            store.writes = store.reads = 0
            await act(i)
            writes, reads = writes + store.writes, reads + store.reads
        out[name] = {"writes": writes / runs, "reads": reads / runs}

    await count("plain_start", None, lambda i: plain.start({"account": f"p{i}"}))
    await count("debounce_first", None, lambda i: debounced.start({"account": f"d{i}"}))
    await count("debounce_fold", None, lambda i: debounced.start({"account": f"d{i}", "v": 2}))

    # A worker claims every pending run: they have begun.
    await store.inner.claim("w", clock.now() + _LATER, 30, runs, {"debounced": ["1"]})
    await count("debounce_after_begin", None, lambda i: debounced.start({"account": f"d{i}"}))
    await count("emit_untriggered", None, lambda i: engine.emit_event("nobody", {"n": i}))
    await count("emit_trigger", None, lambda i: engine.emit_event("go", {"n": i}))

    async def pending(i: int) -> None:
        await cancellable.start({"account": f"c{i}"})

    await count(
        "emit_cancel_on", pending, lambda i: engine.emit_event("gone", {"account": f"c{i}"})
    )
    await engine.shutdown()
    await store.inner.close()
    return out


def measure(kind: str, runs: int) -> dict[str, Any]:
    """One pass on a fresh store of ``kind``."""
    with tempfile.TemporaryDirectory(prefix="streamline-bench-") as tmp:
        factories: dict[str, Callable[[], Callable[[], Store]]] = {
            "memory": lambda: memory,
            "sqlite": lambda: sqlite_factory(tmp),
            "mongo": mongo_factory,
        }
        return asyncio.run(_measure(factories[kind](), runs))


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(json.dumps({kind: measure(kind, n) for kind in STORES}, indent=2))
