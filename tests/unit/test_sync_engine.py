"""``engine.sync``: the client calls as blocking functions, for sync web apps and scripts."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from streamline_core import Engine, InvalidStateError, RunStatus, StepContext


async def ask(ctx: StepContext) -> None:
    await ctx.wait("approve?")


async def listen(ctx: StepContext) -> None:
    await ctx.wait_for("paid")


def _engine(tmp_path: Path) -> Engine:
    engine = Engine(f"sqlite:///{tmp_path / 'sync.db'}", load_entry_point_plugins=False)
    engine.workflow("order", steps={"ask": ask, "pay": listen, "ship": lambda ctx: "shipped"})
    return engine


def test_a_sync_caller_starts_signals_and_waits_for_a_run(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        engine.sync.start_worker()
        run = engine.sync.start("order", {"id": 7}, meta={"user": "alice"})
        assert run.status == RunStatus.RUNNING
        for _ in range(200):
            current = engine.sync.get(run.id)
            if current is not None and current.status == RunStatus.WAITING:
                break
            threading.Event().wait(0.01)
        engine.sync.resume(run.id, {"approved": True})
        for _ in range(200):
            if engine.sync.emit_event("paid", {"amount": 3}, run_id=run.id):
                break
            threading.Event().wait(0.01)
        done = engine.sync.wait_for("order", run.id, timeout=10, poll_interval=0.01)
        assert done.status == RunStatus.DONE
        assert done.output == "shipped"
        assert [r.id for r in engine.sync.find(meta={"user": "alice"}).items] == [run.id]
    finally:
        engine.sync.close(timeout=1)


def test_a_sync_client_cancels_a_run_it_started(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        run = engine.sync.start("order")
        cancelled = engine.sync.cancel(run.id, "no longer needed")
        assert cancelled.status == RunStatus.CANCELLED
    finally:
        engine.sync.close(timeout=1)


def test_the_background_loop_runs_on_a_daemon_thread(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    try:
        engine.sync.get("nope")
        threads = [t for t in threading.enumerate() if t.name == "streamline-sync"]
        assert threads and all(t.daemon for t in threads)
    finally:
        engine.sync.close(timeout=1)
    assert not [t for t in threading.enumerate() if t.name == "streamline-sync"]


def test_sync_calls_inside_an_event_loop_are_refused(tmp_path: Path) -> None:
    engine = _engine(tmp_path)

    async def inside() -> None:
        with pytest.raises(InvalidStateError, match="await the engine"):
            engine.sync.get("x")

    asyncio.run(inside())
    engine.sync.close(timeout=1)


def test_a_sync_emit_with_an_idempotency_key_starts_its_trigger_once(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    engine.workflow("fulfil", steps={"ask": ask}, trigger="order.placed")
    try:
        for _ in range(2):
            assert engine.sync.emit_event("order.placed", {"n": 1}, idempotency_key="evt-1") == 0
        (run,) = engine.sync.find(workflow_id="fulfil").items
        assert (run.input, run.idempotency_key) == ({"n": 1}, "evt-1")
    finally:
        engine.sync.close(timeout=1)
