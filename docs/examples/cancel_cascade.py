"""Cancel cascades: cancelling a run cancels its active children, recursively.

An ``import`` run starts one child per file (each of which starts its own
child to scan the file) and a ``detached=True`` audit child. Cancelling the
import cancels every file run and every scan under it; the detached audit
run outlives its parent.

Run it:

    python docs/examples/cancel_cascade.py
"""

from __future__ import annotations

import asyncio

from streamline_core import Engine, RunStatus, StepContext, WorkflowRun


async def scan(ctx: StepContext) -> None:
    await ctx.wait("waiting for the virus scanner")  # never answered in this example


async def load_file(ctx: StepContext) -> None:
    await ctx.run_child("scan", {"file": ctx.input["file"]})


async def audit(ctx: StepContext) -> None:
    await ctx.wait("waiting for an auditor")


async def import_all(ctx: StepContext) -> None:
    await ctx.start_child("audit", {"import": ctx.run_id}, key="audit", detached=True)
    await ctx.run_children([("file", {"file": f}) for f in ("a.csv", "b.csv")])


async def _tree(engine: Engine, run_id: str, depth: int = 0) -> list[tuple[int, WorkflowRun]]:
    found: list[tuple[int, WorkflowRun]] = []
    for child in (await engine.runs.find(parent_run_id=run_id, sort="created_at")).items:
        found.append((depth + 1, child))
        found += await _tree(engine, child.id, depth + 1)
    return found


async def main(engine: Engine | None = None) -> list[tuple[int, WorkflowRun]]:
    """Start the import, cancel it once every scan waits; return the run tree afterwards."""
    engine = engine or Engine("memory://")
    async with engine:
        engine.workflow("scan", steps={"scan": scan})
        engine.workflow("file", steps={"load": load_file})
        engine.workflow("audit", steps={"audit": audit})
        importer = engine.workflow("import", steps={"import_all": import_all})
        run = await importer.start()
        for _ in range(500):  # until both scans wait (a few event-loop turns)
            tree = await _tree(engine, run.id)
            if sum(1 for _, r in tree if r.workflow_id == "scan" and r.status == "waiting") == 2:
                break
            await asyncio.sleep(0.01)
        await importer.cancel(run.id, "wrong files")
        for _ in range(500):
            tree = await _tree(engine, run.id)
            if all(r.status == RunStatus.CANCELLED for _, r in tree if not r.detached):
                break
            await asyncio.sleep(0.01)
        parent = await importer.get(run.id)

    assert parent is not None
    print(f"import {parent.status}; the cascade is done:")
    for depth, child in tree:
        mark = " (detached)" if child.detached else ""
        print(f"{'  ' * depth}{child.workflow_id} {child.status}{mark}")
    return [(0, parent), *tree]


if __name__ == "__main__":
    asyncio.run(main())
