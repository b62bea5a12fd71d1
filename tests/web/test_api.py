"""The JSON API via httpx's ASGI transport: routes, errors, auth, CSRF, read-only, tenants."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI

from streamline_core import Engine
from streamline_testing import FakeClock, InMemoryStore
from streamline_web import api_router, create_app
from tests.web.support import HOOKS, client, error_of, make_engine, settle

SAME_ORIGIN = {"Origin": "http://testserver"}


async def _waiting(engine: Engine, **start: Any) -> str:
    run = await engine.get_workflow("approval").start(start.pop("input", {"note": "n"}), **start)
    await settle(engine)
    stored = await engine.runs.get(run.id)
    assert stored is not None and stored.status == "waiting", stored
    return run.id


async def test_find_runs_filters_and_cursor_paging() -> None:
    async with make_engine() as engine:
        ids = [await _waiting(engine, meta={"user": f"u{i}"}) for i in range(3)]
        await engine.get_workflow("broken").start("x")
        await settle(engine)
        async with client(create_app(engine)) as http:
            everything = (await http.get("/api/runs")).json()
            assert len(everything["items"]) == 4 and everything["next_cursor"] is None
            waiting = (await http.get("/api/runs", params={"status": "waiting"})).json()
            assert {r["id"] for r in waiting["items"]} == set(ids)
            both = await http.get("/api/runs", params=[("status", "waiting"), ("status", "failed")])
            assert len(both.json()["items"]) == 4
            by_wf = (await http.get("/api/runs", params={"workflow_id": "broken"})).json()
            assert [r["workflow_id"] for r in by_wf["items"]] == ["broken"]
            by_meta = await http.get("/api/runs", params={"meta": json.dumps({"user": "u1"})})
            assert [r["id"] for r in by_meta.json()["items"]] == [ids[1]]
            by_ctx = await http.get("/api/runs", params={"context": json.dumps({"note": "n"})})
            assert len(by_ctx.json()["items"]) == 3

            seen: list[str] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 1, "sort": "created_at"}
                if cursor:
                    params["cursor"] = cursor
                page = (await http.get("/api/runs", params=params)).json()
                seen += [r["id"] for r in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert len(seen) == 4 and len(set(seen)) == 4

            for bad in (
                {"limit": 0},
                {"limit": "many"},
                {"status": "sleeping"},
                {"meta": "{not json"},
                {"meta": "[1]"},
                {"cursor": "zz"},
                {"sort": "name"},
                {"created_after": "2024-01-01T00:00:00"},  # naive: ambiguous
                {"created_after": "yesterday"},
            ):
                assert error_of(await http.get("/api/runs", params=bad)) == (
                    400,
                    "VALIDATION_ERROR",
                ), bad


async def test_get_run() -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)
        async with client(create_app(engine)) as http:
            body = (await http.get(f"/api/runs/{run_id}")).json()
            assert body["id"] == run_id and body["status"] == "waiting"
            assert body["wait"]["kind"] == "human" and body["steps"][0]["status"] == "done"
            assert error_of(await http.get("/api/runs/nope")) == (404, "WORKFLOW_NOT_FOUND")
            assert error_of(await http.get(f"/api/runs/{'x' * 300}")) == (400, "VALIDATION_ERROR")


async def test_resume_and_its_errors() -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)
        async with client(create_app(engine)) as http:
            url = f"/api/runs/{run_id}/resume"
            bad_json = await http.post(
                url, content="{nope", headers={"Content-Type": "application/json"}
            )
            assert error_of(bad_json) == (400, "VALIDATION_ERROR")
            assert "JSON" in bad_json.json()["error"]["message"]
            assert error_of(await http.post(url, json={"paylod": 1})) == (400, "VALIDATION_ERROR")
            assert error_of(await http.post(url, json=[1])) == (400, "VALIDATION_ERROR")
            nan = await http.post(
                url, content='{"payload": NaN}', headers={"Content-Type": "application/json"}
            )
            assert error_of(nan) == (400, "VALIDATION_ERROR")
            assert error_of(await http.post("/api/runs/nope/resume", json={})) == (
                404,
                "WORKFLOW_NOT_FOUND",
            )

            resumed = await http.post(url, json={"payload": {"ok": True}})
            assert resumed.status_code == 200 and resumed.json()["status"] == "running"
            await settle(engine)
            done = (await http.get(f"/api/runs/{run_id}")).json()
            assert done["status"] == "done" and done["output"] == {"approved": {"ok": True}}
            assert error_of(await http.post(url, json={})) == (400, "INVALID_STATE")


async def test_resume_without_a_body_resumes_with_null() -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)
        async with client(create_app(engine)) as http:
            assert (await http.post(f"/api/runs/{run_id}/resume")).status_code == 200
        await settle(engine)
        run = await engine.runs.get(run_id)
        assert run is not None and run.output == {"approved": None}


async def test_cancel_pause_unpause_rewind() -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)
        async with client(create_app(engine)) as http:
            base = f"/api/runs/{run_id}"
            paused = await http.post(f"{base}/pause")
            assert paused.status_code == 200 and paused.json()["paused"] is True
            unpaused = await http.post(f"{base}/unpause")
            assert unpaused.json()["paused"] is False

            assert error_of(await http.post(f"{base}/rewind", json={"step_id": "nope"})) == (
                404,
                "STEP_NOT_FOUND",
            )
            assert error_of(await http.post(f"{base}/rewind")) == (400, "VALIDATION_ERROR")
            assert error_of(await http.post(f"{base}/rewind", json={"step_id": 3})) == (
                400,
                "VALIDATION_ERROR",
            )

            cancelled = await http.post(f"{base}/cancel", json={"reason": "no longer needed"})
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
            assert error_of(await http.post(f"{base}/cancel")) == (400, "INVALID_STATE")
            assert error_of(await http.post(f"{base}/pause")) == (400, "INVALID_STATE")
            for action in ("cancel", "pause", "unpause"):
                assert error_of(await http.post(f"/api/runs/nope/{action}")) == (
                    404,
                    "WORKFLOW_NOT_FOUND",
                )

            rewound = await http.post(f"{base}/rewind", json={"step_id": "approve"})
            assert rewound.status_code == 200 and rewound.json()["status"] == "running"
            await settle(engine)
            again = await engine.runs.get(run_id)
            assert again is not None and again.status == "waiting"


async def test_events_broadcast_and_targeted() -> None:
    async with make_engine() as engine:
        events = engine.get_workflow("events")
        first = await events.start()
        second = await events.start()
        await settle(engine)
        async with client(create_app(engine)) as http:
            one = await http.post("/api/events/go", json={"data": 1, "run_id": first.id})
            assert one.json() == {"resumed": 1}
            rest = await http.post("/api/events/go", json={"data": 2})
            assert rest.json() == {"resumed": 1}
            assert (await http.post("/api/events/nobody")).json() == {"resumed": 0}
            assert error_of(await http.post("/api/events/go", json={"run_id": "nope"})) == (
                404,
                "WORKFLOW_NOT_FOUND",
            )
            assert error_of(await http.post("/api/events/go", json={"data": 1, "x": 2})) == (
                400,
                "VALIDATION_ERROR",
            )
        await settle(engine)
        outputs = [(await engine.runs.get(r.id)).output for r in (first, second)]  # type: ignore[union-attr]
        assert outputs == [1, 2]


async def test_an_event_with_an_idempotency_key_starts_its_trigger_once() -> None:
    async with make_engine() as engine:

        async def hold(ctx: Any) -> None:
            await ctx.wait("hold")

        engine.workflow("fulfil", steps={"hold": hold}, trigger="order.placed")
        async with client(create_app(engine)) as http:
            for _ in range(2):
                sent = await http.post(
                    "/api/events/order.placed",
                    json={"data": {"order": 7}, "idempotency_key": "evt-7"},
                )
                assert sent.json() == {"resumed": 0}
            bad = await http.post("/api/events/order.placed", json={"idempotency_key": 7})
            assert error_of(bad) == (400, "VALIDATION_ERROR")
        page = await engine.runs.find(workflow_id="fulfil")
        assert [(r.input, r.idempotency_key) for r in page.items] == [({"order": 7}, "evt-7")]


async def test_workflows_and_healthz() -> None:
    async with make_engine() as engine, client(create_app(engine)) as http:
        listed = (await http.get("/api/workflows")).json()
        assert {
            "name": "approval",
            "versions": ["1"],
            "steps": ["prepare", "approve", "finish"],
        } in listed
        assert [w["name"] for w in listed] == ["approval", "broken", "events"]
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert error_of(await http.get("/api/nothing-here")) == (404, "NOT_FOUND")
        assert error_of(await http.get("/api/runs/x/resume")) == (405, "METHOD_NOT_ALLOWED")
        schema = (await http.get("/openapi.json")).json()
        assert {"/api/runs", "/api/runs/{run_id}/resume", "/hooks/{token}", "/healthz"} <= set(
            schema["paths"]
        )
        # The interactive docs would load scripts from a CDN: not served.
        assert (await http.get("/docs")).status_code == 404


async def test_hooks_resume_with_the_token_only() -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)
        token = HOOKS[run_id]
        # Even an app with a token serves hooks without auth: the hook token is the credential.
        async with client(create_app(engine, token="s3cret")) as http:
            assert error_of(await http.post("/hooks/wrong-token", json={})) == (
                404,
                "WORKFLOW_NOT_FOUND",
            )
            bad = await http.post(
                f"/hooks/{token}", content="{", headers={"Content-Type": "application/json"}
            )
            assert error_of(bad) == (400, "VALIDATION_ERROR")
            ok = await http.post(f"/hooks/{token}", json={"approved": "yes"})
            assert ok.status_code == 200
            assert ok.json() == {"run_id": run_id, "status": "running"}
            # A used token is a wrong token.
            assert error_of(await http.post(f"/hooks/{token}", json={})) == (
                404,
                "WORKFLOW_NOT_FOUND",
            )
        await settle(engine)
        run = await engine.runs.get(run_id)
        assert run is not None and run.output == {"approved": {"approved": "yes"}}


async def test_hook_with_an_empty_body_resumes_with_null() -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)
        async with client(create_app(engine)) as http:
            assert (await http.post(f"/hooks/{HOOKS[run_id]}")).status_code == 200
        await settle(engine)
        run = await engine.runs.get(run_id)
        assert run is not None and run.output == {"approved": None}


async def test_token_auth_bearer_and_cookie() -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)
        async with client(create_app(engine, token="s3cret")) as http:
            refused = await http.get("/api/runs")
            assert error_of(refused) == (401, "UNAUTHORIZED")
            assert refused.headers["www-authenticate"] == "Bearer"
            wrong = await http.get("/api/runs", headers={"Authorization": "Bearer nope"})
            assert error_of(wrong) == (401, "UNAUTHORIZED")
            assert error_of(await http.post(f"/api/runs/{run_id}/pause")) == (401, "UNAUTHORIZED")
            bearer = {"Authorization": "Bearer s3cret"}
            assert (await http.get("/api/runs", headers=bearer)).status_code == 200
            assert (await http.get(f"/api/runs/{run_id}", headers=bearer)).status_code == 200
            assert (await http.get("/api/workflows", headers=bearer)).status_code == 200
            assert (await http.post(f"/api/runs/{run_id}/pause", headers=bearer)).status_code == 200
            http.cookies.set("streamline_token", "s3cret")
            assert (await http.post(f"/api/runs/{run_id}/unpause")).status_code == 200
            # Liveness needs no auth (load balancers probe it).
            http.cookies.clear()
            assert (await http.get("/healthz")).status_code == 200


async def test_auth_callable_sync_and_async() -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)

        def sync_auth(request: Any) -> bool:
            return bool(request.headers.get("x-user") == "alice")

        async def async_auth(request: Any) -> bool:
            return bool(request.headers.get("x-user") == "alice")

        for auth in (sync_auth, async_auth):
            async with client(create_app(engine, auth=auth)) as http:
                assert error_of(await http.get("/api/runs")) == (401, "UNAUTHORIZED")
                assert error_of(await http.post(f"/api/runs/{run_id}/pause")) == (
                    401,
                    "UNAUTHORIZED",
                )
                alice = {"x-user": "alice"}
                assert (await http.get("/api/runs", headers=alice)).status_code == 200
                assert (
                    await http.post(f"/api/runs/{run_id}/pause", headers=alice)
                ).status_code == 200
                await engine.runs.unpause(run_id)
        with pytest.raises(ValueError):
            create_app(engine, auth=sync_auth, token="t")
        with pytest.raises(ValueError):
            create_app(engine, token="")


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "multipart/form-data; boundary=x"},
    ],
    ids=[
        "origin",
        "null-origin",
        "fetch-cross-site",
        "fetch-same-site",
        "form",
        "text",
        "multipart",
    ],
)
async def test_cross_site_writes_are_refused(headers: dict[str, str]) -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)
        async with client(create_app(engine)) as http:
            for path in (
                f"/api/runs/{run_id}/cancel",
                f"/api/runs/{run_id}/resume",
                "/api/events/go",
            ):
                answer = await http.post(path, content=b"{}", headers=headers)
                assert error_of(answer) == (403, "CROSS_SITE_REQUEST"), path
            # Reads are not state-changing: a cross-site GET gets an answer (CORS keeps it
            # from the other site's script).
            assert (await http.get("/api/runs", headers=headers)).status_code == 200
        run = await engine.runs.get(run_id)
        assert run is not None and run.status == "waiting"


async def test_same_origin_browser_writes_pass() -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)
        async with client(create_app(engine)) as http:
            headers = {**SAME_ORIGIN, "Sec-Fetch-Site": "same-origin"}
            answer = await http.post(f"/api/runs/{run_id}/pause", headers=headers, json={})
            assert answer.status_code == 200
            proxied = {"Origin": "https://dash.example", "X-Forwarded-Host": "dash.example"}
            assert (
                await http.post(f"/api/runs/{run_id}/unpause", headers=proxied)
            ).status_code == 200


async def test_read_only_refuses_every_write() -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)
        async with client(create_app(engine, read_only=True)) as http:
            for path, body in (
                (f"/api/runs/{run_id}/resume", {"payload": 1}),
                (f"/api/runs/{run_id}/cancel", {}),
                (f"/api/runs/{run_id}/pause", None),
                (f"/api/runs/{run_id}/unpause", None),
                (f"/api/runs/{run_id}/rewind", {"step_id": "prepare"}),
                ("/api/events/go", {}),
                (f"/hooks/{HOOKS[run_id]}", {}),
            ):
                assert error_of(await http.post(path, json=body)) == (403, "READ_ONLY"), path
            assert (await http.get("/api/runs")).status_code == 200
            assert (await http.get(f"/api/runs/{run_id}")).status_code == 200
        run = await engine.runs.get(run_id)
        assert run is not None and run.status == "waiting" and not run.paused


async def test_a_tenant_app_sees_and_changes_only_its_tenant() -> None:
    store = InMemoryStore()
    clock = FakeClock()
    async with (
        make_engine(store, clock=clock, tenant_id="acme") as acme,
        make_engine(store, clock=clock, tenant_id="globex") as globex,
    ):
        mine = await _waiting(acme)
        theirs = await _waiting(globex)
        async with client(create_app(acme)) as http:
            listed = (await http.get("/api/runs")).json()["items"]
            assert [r["id"] for r in listed] == [mine]
            assert error_of(await http.get(f"/api/runs/{theirs}")) == (404, "WORKFLOW_NOT_FOUND")
            assert error_of(await http.get("/api/runs", params={"tenant_id": "globex"})) == (
                400,
                "VALIDATION_ERROR",
            )
            for action, body in (("resume", {}), ("cancel", {}), ("pause", None)):
                assert error_of(await http.post(f"/api/runs/{theirs}/{action}", json=body)) == (
                    404,
                    "WORKFLOW_NOT_FOUND",
                ), action
            assert error_of(
                await http.post(f"/api/runs/{theirs}/rewind", json={"step_id": "prepare"})
            ) == (404, "WORKFLOW_NOT_FOUND")
            assert error_of(await http.post("/api/events/go", json={"run_id": theirs})) == (
                404,
                "WORKFLOW_NOT_FOUND",
            )
            assert error_of(await http.post(f"/hooks/{HOOKS[theirs]}", json={})) == (
                404,
                "WORKFLOW_NOT_FOUND",
            )
            page = (await http.get("/")).text
            assert mine in (await http.get("/runs")).text and theirs not in page
        run = await globex.runs.get(theirs)
        assert run is not None and run.status == "waiting"


async def test_api_router_mounted_in_your_own_app() -> None:
    async with make_engine() as engine:
        run_id = await _waiting(engine)
        mine = FastAPI()
        mine.include_router(api_router(engine, read_only=False), prefix="/workflows")
        async with client(mine) as http:
            assert (await http.get(f"/workflows/api/runs/{run_id}")).json()["id"] == run_id
            # Errors keep their shape without any exception handler on the host app.
            assert error_of(await http.get("/workflows/api/runs/nope")) == (
                404,
                "WORKFLOW_NOT_FOUND",
            )
            assert error_of(await http.get("/workflows/api/runs", params={"limit": -1})) == (
                400,
                "VALIDATION_ERROR",
            )
            bad = await http.post(
                f"/workflows/api/runs/{run_id}/resume",
                content="[",
                headers={"Content-Type": "application/json"},
            )
            assert error_of(bad) == (400, "VALIDATION_ERROR")
            assert error_of(
                await http.post(
                    f"/workflows/api/runs/{run_id}/cancel", headers={"Origin": "http://x"}
                )
            ) == (403, "CROSS_SITE_REQUEST")
            ok = await http.post(f"/workflows/hooks/{HOOKS[run_id]}", json=1)
            assert ok.status_code == 200
        locked = FastAPI()
        locked.include_router(api_router(engine, auth=lambda r: False, read_only=True))
        async with client(locked) as http:
            assert error_of(await http.get("/api/runs")) == (401, "UNAUTHORIZED")
            assert error_of(await http.post("/api/events/x")) == (401, "UNAUTHORIZED")
