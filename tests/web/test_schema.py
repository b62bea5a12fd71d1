"""Schemathesis against /openapi.json: no generated request gets a 500, errors keep their shape."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from streamline_core import Engine
from streamline_testing import FakeClock, InMemoryStore
from streamline_web import create_app
from tests.web.support import add_schedules, make_engine, settle

STORE = InMemoryStore()
CLOCK = FakeClock()
# The app is built at import (schemathesis reads its schema then); the runs arrive below.
APP_ENGINE: Engine = make_engine(STORE, clock=CLOCK)
add_schedules(APP_ENGINE)  # registers the schedules' workflow, so trigger can start runs
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(APP_ENGINE))
# Per operation (15 of them): CI keeps its dozen (about 3 s in all); a local run
# (the dev profile) tries fewer, since the operations' shapes, not volume, find the bugs.
EXAMPLES = 12 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 5


@pytest.fixture(scope="module", autouse=True)
def _runs() -> None:
    store, clock = STORE, CLOCK

    async def populate() -> None:
        # Some runs to hit: waiting, done, failed, and two stored schedules; then the
        # app gets a client engine.
        worker = make_engine(store, clock=clock)
        add_schedules(worker)
        async with worker:
            run = await worker.get_workflow("approval").start({"note": "x"})
            await worker.get_workflow("broken").start(1)
            await settle(worker)
            await worker.runs.resume(run.id, 1)
            await worker.get_workflow("approval").start({"note": "y"})
            await settle(worker)

    asyncio.run(populate())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)
def test_no_input_gets_a_server_error(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400 and response.status_code != 405:
        body = response.json()
        assert isinstance(body["error"]["code"], str), body
        assert isinstance(body["error"]["message"], str), body
