"""Opening a SQLite store: lazily, never by accident, read-only, with errors naming the path."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from streamline_core import Engine
from streamline_core.errors import StoreUnavailableError
from streamline_core.run import RunStatus, StepState, WorkflowRun
from streamline_core.store import RunQuery
from streamline_sqlite import SQLiteStore, from_url


def _run() -> WorkflowRun:
    from datetime import UTC, datetime

    now = datetime(2030, 1, 1, tzinfo=UTC)
    return WorkflowRun(
        id="r1",
        workflow_id="wf",
        status=RunStatus.RUNNING,
        steps=[StepState(step_id="a")],
        current_step_id="a",
        created_at=now,
        updated_at=now,
        next_run_at=now,
    )


def _make_db(path: Path) -> None:
    async def go() -> None:
        store = SQLiteStore(path)
        await store.create(_run())
        await store.close()

    asyncio.run(go())


def test_constructing_an_engine_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STREAMLINE_STORE", raising=False)

    engine = Engine(load_entry_point_plugins=False)
    assert list(tmp_path.iterdir()) == []

    async def go() -> None:
        assert await engine.runs.count() == 0  # first use opens (and creates) it
        await engine.shutdown()

    asyncio.run(go())
    assert (tmp_path / "streamline.db").exists()
    nested = from_url("sqlite:///a/b/c.db")
    asyncio.run(nested.close())
    assert not (tmp_path / "a").exists()


def test_create_false_and_mode_rw_refuse_a_missing_database(tmp_path: Path) -> None:
    missing = tmp_path / "does" / "not" / "exist" / "x.db"
    for store in (SQLiteStore(missing, create=False), from_url(f"sqlite:///{missing}?mode=rw")):
        with pytest.raises(StoreUnavailableError, match=f"no database at {missing}"):
            asyncio.run(store.count(RunQuery()))
        asyncio.run(store.close())
    assert not (tmp_path / "does").exists()


def test_mode_rw_opens_an_existing_database_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    _make_db(path)

    async def go() -> None:
        store = from_url(f"sqlite:///{path}?mode=rw")
        run = await store.get("r1")
        assert run is not None
        await store.delete(RunQuery(run_ids=["r1"], status=[RunStatus.RUNNING]))
        assert await store.count(RunQuery()) == 0
        await store.close()

    asyncio.run(go())


def test_read_only_reads_and_refuses_every_write(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    _make_db(path)

    async def go() -> None:
        store = from_url(f"sqlite:///{path}?mode=ro")
        assert store.read_only
        assert [r.id for r in (await store.find(RunQuery())).items] == ["r1"]
        with pytest.raises(StoreUnavailableError, match="read-only"):
            await store.create(_run().model_copy(update={"id": "r2"}))
        await store.close()

    asyncio.run(go())
    with pytest.raises(StoreUnavailableError, match="no database at"):
        SQLiteStore(tmp_path / "other.db", read_only=True).open()
    (tmp_path / "empty.db").touch()
    with pytest.raises(StoreUnavailableError, match="no streamline runs table"):
        SQLiteStore(tmp_path / "empty.db", read_only=True).open()
    with pytest.raises(ValueError, match="mode"):
        from_url(f"sqlite:///{path}?mode=wat")


def test_a_path_under_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    store = from_url(f"sqlite:///{tmp_path}/afile/sub/x.db")
    with pytest.raises(StoreUnavailableError) as info:
        store.open()
    assert f"{tmp_path}/afile is a file" in str(info.value)
    with pytest.raises(StoreUnavailableError, match="is a directory"):
        SQLiteStore(tmp_path).open()


READ_ONLY_MOUNT = textwrap.dedent(
    """
    import asyncio, sys
    from streamline_core.errors import StoreUnavailableError
    from streamline_core.store import RunQuery
    from streamline_sqlite import from_url

    ro = sys.argv[1]

    async def main():
        store = from_url(f"sqlite:///{ro}/x.db?mode=ro")
        print("read", [r.id for r in (await store.find(RunQuery())).items])
        await store.close()
        for url in (f"sqlite:///{ro}/x.db", f"sqlite:///{ro}/new.db", f"sqlite:///{ro}/d/new.db"):
            try:
                await from_url(url).count(RunQuery())
            except StoreUnavailableError as exc:
                print("error", exc)

    asyncio.run(main())
    """
)


def test_a_database_on_a_read_only_mount(tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    _make_db(src / "x.db")
    script = tmp_path / "probe.py"
    script.write_text(READ_ONLY_MOUNT)
    result = subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            f'mount --bind -o ro "{src}" "{ro}" && "{sys.executable}" "{script}" "{ro}"',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "mount" in result.stderr or "unshare" in result.stderr:
        pytest.skip(f"cannot make a read-only mount here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "read ['r1']"
    assert (
        lines[1]
        == f"error cannot open SQLite database {ro}/x.db ({ro} is on a read-only file system)"
    )
    assert (
        lines[2]
        == f"error cannot open SQLite database {ro}/new.db ({ro} is on a read-only file system)"
    )
    assert lines[3].startswith(f"error cannot create the directory {ro}/d for SQLite database")
    assert lines[3].endswith("Read-only file system")
