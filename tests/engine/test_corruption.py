"""A corrupt run document is reported and skipped; other runs keep running."""

from __future__ import annotations

from typing import Any

import pytest

from streamline_core import DataCorruptionError, ErrorCode, RunStatus
from tests.conftest import Env


async def corrupt(env: Env, run_id: str) -> None:
    """Break the stored document of ``run_id`` behind the store's back."""
    if env.kind == "memory":
        env.store.raw(run_id)["steps"] = "garbage"  # type: ignore[attr-defined]
    elif env.kind == "sqlite":
        import json
        import sqlite3

        with sqlite3.connect(env.tmp_path / "runs.db") as db:
            (doc,) = db.execute("SELECT doc FROM runs WHERE id = ?", (run_id,)).fetchone()
            data = json.loads(doc)
            data["steps"] = "garbage"
            db.execute("UPDATE runs SET doc = ? WHERE id = ?", (json.dumps(data), run_id))
    elif env.kind == "postgres":
        import psycopg

        from tests.postgres.server import server_url

        table = env.store.table  # type: ignore[attr-defined]
        async with await psycopg.AsyncConnection.connect(server_url(), autocommit=True) as db:
            await db.execute(
                f"UPDATE {table} SET doc = jsonb_set(doc, '{{steps}}', '\"garbage\"') "
                "WHERE id = %s",
                (run_id,),
            )
    else:
        await env.store.collection.update_one(  # type: ignore[attr-defined]
            {"_id": run_id}, {"$set": {"steps": "garbage"}}
        )


async def test_a_corrupt_document_is_reported_and_others_still_run(env: Env) -> None:
    errors: list[Any] = []
    steps = {"a": lambda ctx: "ok"}
    client = env.engine()
    wf = client.workflow("c", steps=steps)
    bad = await wf.start(priority=10)
    await corrupt(env, bad.id)
    good = [await wf.start() for _ in range(3)]
    with pytest.raises(DataCorruptionError) as err:
        await wf.get(bad.id)
    assert err.value.code == ErrorCode.DATA_CORRUPTION
    assert "steps" in str(err.value)

    async with env.engine() as worker:
        worker.on("engine:error")(errors.append)
        wwf = worker.workflow("c", steps=steps)
        for run in good:
            assert (await wwf.wait_for(run.id, timeout=10)).status == RunStatus.DONE
    assert any(isinstance(e.error, DataCorruptionError) and e.run_id == bad.id for e in errors)
