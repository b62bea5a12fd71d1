"""Shared pieces of the web tests: an engine with a few workflows, and an httpx client on an app."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from streamline_core import Engine, NonRetriableError, StepContext, Store, create_hook
from streamline_testing import FakeClock, InMemoryStore

XSS = "<script>alert('xss')</script>"
HOOKS: dict[str, str] = {}
"""run id -> hook token, recorded by the ``approval`` workflow's wait step."""


def make_engine(
    store: Store | None = None, *, clock: FakeClock | None = None, **kwargs: Any
) -> Engine:
    """An engine on ``store`` (a fresh in-memory one) with the test workflows registered."""
    engine = Engine(
        store if store is not None else InMemoryStore(),
        clock=clock or FakeClock(),
        load_entry_point_plugins=False,
        **kwargs,
    )
    register(engine)
    return engine


def register(engine: Engine) -> None:
    """``approval`` (prepare, approve: ctx.wait with a hook, finish), ``events``, ``broken``."""
    approval = engine.workflow("approval")

    @approval.step
    async def prepare(ctx: StepContext) -> Any:
        ctx.set("note", ctx.input.get("note") if isinstance(ctx.input, dict) else None)
        return {"echo": ctx.input}

    @approval.step
    async def approve(ctx: StepContext) -> Any:
        hook = create_hook(ctx, "approve")
        HOOKS[ctx.run_id] = hook.token
        await ctx.wait("Manager approval", data={"amount": 42}, hook=hook)

    @approval.step
    async def finish(ctx: StepContext) -> Any:
        return {"approved": ctx.get_output("approve")}

    events = engine.workflow("events")

    @events.step
    async def listen(ctx: StepContext) -> Any:
        await ctx.wait_for("go")

    @events.step
    async def after(ctx: StepContext) -> Any:
        return ctx.get_output("listen")

    broken = engine.workflow("broken")

    @broken.step
    async def explode(ctx: StepContext) -> Any:
        raise NonRetriableError(f"bad input {ctx.input}")


def add_schedules(engine: Engine, label: str = "nightly") -> None:
    """A ``report`` workflow and two schedules: ``{label}`` (cron, Berlin) and ``poll`` (5 min)."""
    report = engine.workflow("report")

    @report.step
    async def build(ctx: StepContext) -> Any:
        return {"kind": ctx.input}

    engine.schedule(label, report, cron="0 2 * * *", timezone="Europe/Berlin", input="daily")
    engine.schedule("poll", report, every=300, input="poll")


async def settle(engine: Engine) -> None:
    """Let the engine's worker finish everything that is ready (the clock never moves)."""
    clock = engine.clock
    for _ in range(10):
        if isinstance(clock, FakeClock):
            await clock.settle()
        await asyncio.sleep(0.002)


def client(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client calling ``app`` in-process (no sockets)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", **kwargs
    )


def error_of(response: httpx.Response) -> tuple[int, str]:
    """``(status, error.code)`` of an error answer, checking its shape on the way."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return response.status_code, body["error"]["code"]
