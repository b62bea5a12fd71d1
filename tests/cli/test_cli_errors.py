"""What a new user hits first: mistyped stores, bad targets, help, exit codes, new commands."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamline_cli import app
from streamline_cli._support import store_url
from streamline_core import Engine, RunStatus, StepContext

wide = CliRunner(env={"COLUMNS": "200"})
narrow = CliRunner(env={"COLUMNS": "80"})


def cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``streamline`` in a subprocess (stderr and exit code as a user sees them)."""
    full_env = {k: v for k, v in os.environ.items() if k != "STREAMLINE_STORE"}
    full_env.update({"COLUMNS": "80", **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "streamline_cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *needles: str
) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


async def ask(ctx: StepContext) -> None:
    await ctx.wait("Manager approval")


def seed(url: str) -> tuple[str, str]:
    """One run waiting for a person and one finished run."""

    async def go() -> tuple[str, str]:
        engine = Engine(url, load_entry_point_plugins=False)
        wf = engine.workflow("approval", steps={"ask": ask, "pay": lambda ctx: "paid"})
        waiting = await wf.start({"amount": 5})
        await wf.execute(waiting.id)
        finished = await wf.start()
        await wf.execute(finished.id)
        await wf.resume(finished.id, {"by": "x"})
        await wf.execute(finished.id)
        await engine.shutdown()
        return waiting.id, finished.id

    return asyncio.run(go())


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


# --- #3: a typo never creates a database ---------------------------------------------


def test_read_and_write_commands_never_create_a_database(tmp_path: Path) -> None:
    for args in (
        ["runs", "list", "--store", "sqlite:///does/not/exist/x.db"],
        ["runs", "show", "X", "--store", "sqlite:///does/not/exist/x.db"],
        ["runs", "resume", "X", "--store", "sqlite:///does/not/exist/x.db"],
        ["runs", "cancel", "X", "--store", "sqlite:///does/not/exist/x.db"],
    ):
        assert_one_line_error(cli(*args, cwd=tmp_path), 1, "no database at does/not/exist/x.db")
    assert_one_line_error(cli("runs", "list", cwd=tmp_path), 1, "no database at streamline.db")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_table_says_no_runs(tmp_path: Path, url: str) -> None:
    asyncio.run(Engine(url, load_entry_point_plugins=False).runs.count())
    result = wide.invoke(app, ["runs", "list", "--store", url])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "no runs"


def test_the_read_commands_open_sqlite_read_only_and_the_others_an_existing_file() -> None:
    assert store_url("sqlite:///x.db", "read") == "sqlite:///x.db?mode=ro"
    assert store_url("sqlite:///x.db?synchronous=OFF", "write") == (
        "sqlite:///x.db?synchronous=OFF&mode=rw"
    )
    assert store_url("sqlite:///x.db?mode=rwc", "read") == "sqlite:///x.db?mode=rwc"
    assert store_url("sqlite:///x.db", "create") == "sqlite:///x.db"
    assert store_url("mongodb://h/db", "read") == "mongodb://h/db?serverSelectionTimeoutMS=5000"
    assert store_url("mongodb://h/db?serverSelectionTimeoutMS=1", "read").endswith("=1")


# --- #4: one-line errors, never a traceback --------------------------------------------


def test_store_urls_that_are_wrong_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    assert_one_line_error(
        cli("runs", "list", "--store", "sqlite:///", cwd=tmp_path), 2, "names no file"
    )
    assert_one_line_error(
        cli("runs", "list", "--store", "sqlite://", cwd=tmp_path), 2, "names no file"
    )
    assert_one_line_error(
        cli("demo", "--store", "foo://x", cwd=tmp_path), 2, "no store for scheme 'foo'"
    )
    assert_one_line_error(cli("runs", "list", "--store", "foo://x", cwd=tmp_path), 2, "'foo'")
    assert_one_line_error(
        cli("demo", "--store", "sqlite:///afile/sub/x.db", cwd=tmp_path), 1, "afile is a file"
    )


def test_worker_targets_say_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(
        "def needs(a, b):\n    return None\n\ndef boom():\n    raise RuntimeError('no config')\n"
        "\nnumber = 3\n"
    )
    cases = [
        ("myapp:nope", 2, "module 'myapp' has no attribute 'nope'"),
        ("myapp:needs", 2, "needs arguments (a, b)"),
        ("myapp:number", 2, "is a int, not a streamline Engine"),
        ("myapp:boom", 1, "RuntimeError: no config"),
        ("nomodule:engine", 2, "no module named 'nomodule'"),
        ("myapp", 2, "expected MODULE:ATTRIBUTE"),
    ]
    for target, code, needle in cases:
        assert_one_line_error(cli("worker", target, cwd=tmp_path), code, needle)


def test_an_unreachable_mongo_fails_fast_in_one_line(tmp_path: Path) -> None:
    result = cli(
        "runs",
        "list",
        "--store",
        "mongodb://127.0.0.1:1/db?serverSelectionTimeoutMS=300",
        cwd=tmp_path,
    )
    assert_one_line_error(result, 1, "cannot reach MongoDB at 127.0.0.1:1")
    assert "Topology" not in result.stderr
    assert len(result.stderr) < 300


# --- #5: the demo refuses a store its processes cannot share ------------------------------


def test_the_demo_refuses_a_memory_store(tmp_path: Path) -> None:
    for store in ("memory://", "sqlite://:memory:"):
        assert_one_line_error(cli("demo", "--store", store, cwd=tmp_path), 2, "cannot share")


# --- #6: worker --store -------------------------------------------------------------------


def test_worker_takes_store_for_an_app_that_builds_engine(tmp_path: Path) -> None:
    (tmp_path / "plainapp.py").write_text(
        "from streamline_core import Engine\nengine = Engine()\n"
        "engine.workflow('w', steps={'a': lambda ctx: 1})\n"
    )
    (tmp_path / "fixedapp.py").write_text(
        "from streamline_core import Engine\nengine = Engine('sqlite:///fixed.db')\n"
    )
    store = f"sqlite:///{tmp_path / 'sub' / 'w.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamline_cli", "worker", "plainapp:engine", "--store", store],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "STREAMLINE_STORE"},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    proc.terminate()
    proc.communicate(timeout=30)
    assert f"store={store}" in first, first
    assert (tmp_path / "sub" / "w.db").exists()  # the worker creates the database
    assert_one_line_error(
        cli("worker", "fixedapp:engine", "--store", store, cwd=tmp_path), 2, "sqlite:///fixed.db"
    )


# --- #7: the view of a run cancelled while waiting ------------------------------------------


def test_show_says_what_a_cancelled_run_was_waiting_for(url: str) -> None:
    waiting, _ = seed(url)
    assert wide.invoke(app, ["runs", "cancel", waiting, "--store", url]).exit_code == 0
    shown = wide.invoke(app, ["runs", "show", waiting, "--store", url])
    assert shown.exit_code == 0, shown.output
    assert "cancelled — waiting" not in shown.output
    assert "cancelled" in shown.output
    if "Manager approval" in shown.output:  # the wait is still recorded somewhere
        assert "cancelled while waiting (human: Manager approval)" in shown.output
        assert re.search(r"ask\s+│\s+cancelled while waiting", shown.output)


# --- #8: help, version, --status, --json, 80 columns, new commands -------------------------------


def test_help_renders_plain_metavars() -> None:
    for args in ([], ["worker"], ["runs"], ["runs", "list"], ["runs", "start"], ["events", "emit"]):
        result = narrow.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output and "<str>" not in result.output
        assert "{" not in result.output, result.output
    assert "MODULE:ATTRIBUTE" in narrow.invoke(app, ["worker", "--help"]).output


def test_version() -> None:
    result = wide.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert re.fullmatch(r"streamline \d+\.\d+\.\d+\S*\n", result.output)


def test_status_takes_several_values_and_json_output(url: str) -> None:
    waiting, finished = seed(url)
    for args in (["--status", "done", "--status", "waiting"], ["--status", "done,waiting"]):
        listed = wide.invoke(app, ["runs", "list", "--store", url, *args])
        assert waiting in listed.output and finished in listed.output
    as_json = wide.invoke(app, ["runs", "list", "--store", url, "--json", "--status", "done"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert [r["id"] for r in data["runs"]] == [finished] and data["next_cursor"] is None
    shown = json.loads(wide.invoke(app, ["runs", "show", waiting, "--store", url, "--json"]).output)
    assert shown["id"] == waiting and shown["status"] == "waiting"
    bad = wide.invoke(app, ["runs", "list", "--store", url, "--status", "finished"])
    assert bad.exit_code == 2


def test_runs_list_fits_80_columns_with_whole_ids(url: str) -> None:
    waiting, finished = seed(url)
    listed = narrow.invoke(app, ["runs", "list", "--store", url])
    assert listed.exit_code == 0, listed.output
    assert all(len(line) <= 80 for line in listed.output.splitlines()), listed.output
    assert waiting in listed.output and finished in listed.output


APP = textwrap.dedent(
    """
    from streamline_core import Engine

    engine = Engine()

    async def greet(ctx):
        return f"hello {ctx.input['name']}"

    async def ask(ctx):
        await ctx.wait_for("approved")

    engine.workflow("greet", steps={"greet": greet, "ask": ask, "done": lambda ctx: "ok"})
    """
)


def test_start_pause_unpause_rewind_emit_delete(tmp_path: Path) -> None:
    (tmp_path / "greetapp.py").write_text(APP)
    store = f"sqlite:///{tmp_path / 'g.db'}"
    env = {"STREAMLINE_STORE": store}

    started = cli(
        "runs",
        "start",
        "greet",
        "--app",
        "greetapp:engine",
        "--input",
        '{"name": "ada"}',
        "--json",
        cwd=tmp_path,
        env=env,
    )
    assert started.returncode == 0, started.stderr
    run_id = json.loads(started.stdout)["id"]
    bad_input = cli(
        "runs", "start", "greet", "--app", "greetapp:engine", "--input", "{", cwd=tmp_path, env=env
    )
    assert_one_line_error(bad_input, 2, "--input is not valid JSON")
    unknown = cli("runs", "start", "nope", "--app", "greetapp:engine", cwd=tmp_path, env=env)
    assert_one_line_error(unknown, 1, "no workflow named 'nope'")

    paused = cli("runs", "pause", run_id, cwd=tmp_path, env=env)
    assert paused.returncode == 0, paused.stderr
    listed = cli("runs", "list", "--json", cwd=tmp_path, env=env)
    assert json.loads(listed.stdout)["runs"][0]["paused"] is True
    assert cli("runs", "unpause", run_id, cwd=tmp_path, env=env).returncode == 0

    async def drive() -> None:
        engine = Engine(store, load_entry_point_plugins=False)
        wf = engine.workflow(
            "greet", steps={"greet": greet_step, "ask": wait_step, "done": lambda ctx: "ok"}
        )
        await wf.execute(run_id)
        await engine.shutdown()

    asyncio.run(drive())
    not_done = cli("runs", "delete", run_id, cwd=tmp_path, env=env)
    assert_one_line_error(not_done, 1, "only finished runs can be deleted")
    emitted = cli(
        "events",
        "emit",
        "approved",
        "--data",
        '{"ok": true}',
        "--run",
        run_id,
        cwd=tmp_path,
        env=env,
    )
    assert emitted.returncode == 0, emitted.stderr
    assert "1 run(s) resumed" in emitted.stdout
    asyncio.run(drive())
    shown = json.loads(cli("runs", "show", run_id, "--json", cwd=tmp_path, env=env).stdout)
    assert shown["status"] == RunStatus.DONE.value

    rewound = cli("runs", "rewind", run_id, "--step", "ask", cwd=tmp_path, env=env)
    assert rewound.returncode == 0, rewound.stderr
    assert "now running" in rewound.stdout
    assert_one_line_error(
        cli("runs", "rewind", run_id, "--step", "zzz", cwd=tmp_path, env=env), 1, "no step 'zzz'"
    )
    assert cli("runs", "cancel", run_id, cwd=tmp_path, env=env).returncode == 0
    deleted = cli("runs", "delete", run_id, cwd=tmp_path, env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert_one_line_error(cli("runs", "show", run_id, cwd=tmp_path, env=env), 1, "not found")


async def greet_step(ctx: StepContext) -> str:
    return f"hello {ctx.input['name']}"


async def wait_step(ctx: StepContext) -> None:
    await ctx.wait_for("approved")


RO_PROBE = textwrap.dedent(
    """
    set -e
    mount --bind -o ro "$SRC" "$RO"
    cd "$RO/.."
    DB="sqlite:///$RO/x.db"
    for args in "runs list --store $DB" "runs show nope --store $DB" \\
                "runs cancel nope --store $DB" "demo --store sqlite:///$RO/new.db"; do
        "$PY" -m streamline_cli $args >out.txt 2>err.txt && code=0 || code=$?
        echo "== $code $(tr '\\n' ' ' < out.txt) | $(tr '\\n' '~' < err.txt)"
    done
    """
)


def test_a_database_on_a_read_only_mount_can_be_inspected(tmp_path: Path, url: str) -> None:
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    seed(f"sqlite:///{src / 'x.db'}")
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", RO_PROBE],
        env={**os.environ, "SRC": str(src), "RO": str(ro), "PY": sys.executable, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        cwd=tmp_path,
    )
    if result.returncode != 0 and "mount" in result.stderr:
        pytest.skip(f"cannot make a read-only mount here: {result.stderr.strip()}")
    lines = [line for line in result.stdout.splitlines() if line.startswith("== ")]
    assert len(lines) == 4, result.stdout + result.stderr
    listed, shown, cancelled, demo = lines
    assert listed.startswith("== 0 ") and "approval v1" in listed and "| " in listed
    assert shown.startswith("== 1 ") and "'nope' not found~" in shown
    assert cancelled.startswith("== 1 ")
    assert (
        f"cannot open SQLite database {ro}/x.db ({ro} is on a read-only file system)" in cancelled
    )
    assert demo.startswith("== 1 ")
    assert f"{ro} is on a read-only file system" in demo
    assert "Traceback" not in result.stdout
