"""Lost answers under a real fault: the connection drops after the server committed the write.

A :class:`~tests.postgres.proxy.CutProxy` between the store and the server
forwards a marked statement, lets the server run and commit it, and closes
the connection before the answer reaches the store. The store must
recognise the row as its own write (its ``write_id``): at once, by reading
it back, or, when the read fails too, on the caller's retry of the same
write; never a ``ConflictError``, never a second commit.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from streamline_core import Engine, RunStatus, StepContext
from streamline_core.errors import ConflictError, StoreUnavailableError
from streamline_core.run import WorkflowRun
from streamline_postgres import PostgresStore
from streamline_testing import FakeClock
from tests.postgres.proxy import CutProxy
from tests.postgres.server import drop_table, server_url

NOW = datetime(2030, 1, 1, tzinfo=UTC)
T = TypeVar("T")


def _run(run_id: str, **fields: object) -> WorkflowRun:
    return WorkflowRun.model_validate(
        {"id": run_id, "workflow_id": "wf", "created_at": NOW, "updated_at": NOW, **fields}
    )


@asynccontextmanager
async def _stores() -> AsyncIterator[tuple[CutProxy, PostgresStore, PostgresStore]]:
    """(proxy, a store through it, a store straight to the server), on one new table."""
    table = f"t_{uuid.uuid4().hex[:12]}"
    proxy = await CutProxy(server_url()).start()
    direct = PostgresStore(server_url(), table=table)
    cut = PostgresStore(proxy.url, table=table, timeout=1.0)
    try:
        await direct.get("warm-up")  # creates the table
        await cut.get("warm-up")  # opens the pool through the proxy
        yield proxy, cut, direct
    finally:
        await cut.close()
        await direct.close()
        await proxy.close()
        await drop_table(table)


async def _until_up(call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` retried on ``StoreUnavailableError``, as the engine's write loops do."""
    for _ in range(50):
        try:
            return await call()
        except StoreUnavailableError:
            await asyncio.sleep(0.1)
    raise AssertionError("the store never came back")


async def test_a_transition_whose_answer_is_lost_is_read_back_as_our_own() -> None:
    async with _stores() as (proxy, cut, direct):
        run, _ = await direct.create(_run("r1"))
        proxy.arm("lost-1")
        new = await cut.transition("r1", run.revision, {"context.note": "lost-1"})
        assert proxy.cuts == 1  # the answer really was lost
        assert (new.revision, new.context) == (run.revision + 1, {"note": "lost-1"})
        stored = await direct.get("r1")
        assert stored is not None and stored.revision == run.revision + 1


async def test_a_retried_transition_whose_answer_and_read_back_were_lost_is_ours() -> None:
    async with _stores() as (proxy, cut, direct):
        run, _ = await direct.create(_run("r1"))
        proxy.arm("lost-2", go_down=True)
        with pytest.raises(StoreUnavailableError):
            await cut.transition("r1", run.revision, {"context.note": "lost-2"})
        committed = await direct.get("r1")
        assert committed is not None and committed.revision == run.revision + 1  # it did commit
        proxy.up()
        again = await _until_up(
            lambda: cut.transition("r1", run.revision, {"context.note": "lost-2"})
        )
        assert again.model_dump() == committed.model_dump()  # our write, not a second one
        # Anyone else retrying that write is told the truth: someone else wrote it.
        with pytest.raises(ConflictError):
            await direct.transition("r1", run.revision, {"context.note": "lost-2"})


async def test_a_retried_create_whose_answer_was_lost_is_ours_not_a_conflict() -> None:
    async with _stores() as (proxy, cut, direct):
        proxy.arm("lost-create", go_down=True)
        with pytest.raises(StoreUnavailableError):
            await cut.create(_run("r2", input={"marker": "lost-create"}))
        assert await direct.get("r2") is not None  # committed
        proxy.up()
        run, created = await _until_up(lambda: cut.create(_run("r2", input={"marker": "x"})))
        assert (run.id, run.input, created) == ("r2", {"marker": "lost-create"}, True)


async def test_a_step_commit_whose_answer_is_lost_lets_the_run_go_on_and_runs_nothing_twice() -> (
    None
):
    executed: Counter[str] = Counter()
    errors: list[Any] = []
    marker = f"output-{uuid.uuid4().hex}"

    async def one(ctx: StepContext) -> str:
        executed["one"] += 1
        return marker

    async def two(ctx: StepContext) -> str:
        executed["two"] += 1
        return "two"

    clock = FakeClock()
    async with _stores() as (proxy, cut, direct):
        engine = Engine(cut, clock=clock, load_entry_point_plugins=False)
        engine.on("engine:error", errors.append)
        wf = engine.workflow("lossy", steps={"one": one, "two": two})
        proxy.arm(marker, go_down=True)  # step one's commit carries its output
        async with engine:
            run = await wf.start()
            for _ in range(200):
                if proxy.cuts:
                    break
                await asyncio.sleep(0.01)
            assert proxy.cuts == 1
            await asyncio.sleep(0.2)  # the commit and its read-back failed: a retry is pending
            proxy.up()
            for _ in range(300):
                done = await direct.get(run.id)
                if done is not None and done.is_terminal:
                    break
                await clock.advance(0.1)  # the commit loop's backoff runs on the engine clock
                await asyncio.sleep(0.02)
        assert done is not None and done.status == RunStatus.DONE
        assert [s.output for s in done.steps] == [marker, "two"]
        assert executed == Counter({"one": 1, "two": 1})
        assert done.recoveries == 0 and errors == []
