"""``streamline-conformance``: one row per clause, exit 0 / 1 / 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import broken_stores
import pytest
from typer.testing import CliRunner

from streamline_testing.conformance import ClauseResult, list_clauses
from streamline_testing.conformance.runner import HarnessLoadError, app, load_harness
from streamline_testing.conformance.suite import MACHINE, by_capability

ROOT = Path(__file__).resolve().parents[2]
WIDE = {"COLUMNS": "250"}


@pytest.fixture
def in_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner imports harnesses relative to the current directory, like ``python -m``."""
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))


def test_every_clause_passing_exits_0_with_one_row_per_clause(in_repo_root: None) -> None:
    result = CliRunner().invoke(app, ["conformance.test_memory_store:MemoryStoreHarness"], env=WIDE)
    assert result.exit_code == 0, result.output
    for name, _ in list_clauses():
        assert name in result.output
    assert "FAILED" not in result.output
    assert "SKIPPED" in result.output  # second_handle_sees_the_same_data
    assert "passed, 1 skipped" in result.output


def test_a_failing_clause_exits_1_and_shows_the_first_line_of_its_failure() -> None:
    spec = f"{broken_stores.__name__}:TransitionIgnoresRevisionHarness"
    result = CliRunner().invoke(
        app, [spec, "--clause", "transition_rejects_stale_revision"], env=WIDE
    )
    assert result.exit_code == 1, result.output
    row = next(line for line in result.output.splitlines() if "transition_rejects_stale" in line)
    assert "FAILED" in row
    assert "AssertionError: transition() with revision 0 (stored: 1) succeeded" in row
    assert "Traceback" in result.output  # the full failure follows the table
    assert "1 failed" in result.output


def test_the_toy_store_from_the_docs_passes_through_the_runner(in_repo_root: None) -> None:
    result = CliRunner().invoke(app, ["docs.examples.toy_store:ToyStoreHarness"], env=WIDE)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "spec",
    [
        "no_such_module_anywhere:Harness",
        "streamline_testing.conformance:NoSuchHarness",
        "streamline_testing:InMemoryStore",
        "streamline_testing.conformance:StoreHarness",
        "missing-colon",
        ":Harness",
    ],
)
def test_a_harness_that_cannot_be_loaded_exits_2(spec: str) -> None:
    result = CliRunner().invoke(app, [spec], env=WIDE)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(HarnessLoadError):
        load_harness(spec)


def test_an_unknown_profile_or_clause_is_a_usage_error() -> None:
    spec = f"{broken_stores.__name__}:TransitionIgnoresRevisionHarness"
    assert CliRunner().invoke(app, [spec, "--profile", "huge"]).exit_code == 2
    assert CliRunner().invoke(app, [spec, "--clause", "no_such_clause"]).exit_code == 2


def test_python_dash_m_runs_the_same_runner() -> None:
    cmd = [sys.executable, "-m", "streamline_testing.conformance"]
    unloadable = subprocess.run(
        [*cmd, "no_such_module_anywhere:Harness"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert unloadable.returncode == 2, unloadable.stdout + unloadable.stderr
    assert "cannot import 'no_such_module_anywhere'" in unloadable.stderr
    helped = subprocess.run([*cmd, "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert helped.returncode == 0
    assert "--profile" in helped.stdout


def test_the_report_is_a_checklist_grouped_by_capability() -> None:
    spec = f"{broken_stores.__name__}:TransitionIgnoresRevisionHarness"
    result = CliRunner().invoke(
        app, [spec, "--clause", "transition", "--clause", "heartbeat"], env=WIDE
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    header = next(
        i for i, line in enumerate(lines) if "transition " in line and "6/9 passed" in line
    )
    assert "3 failed" in lines[header]
    assert "transition_applies_patch_paths" in lines[header + 1]  # its clauses follow
    assert any("heartbeat " in line and "4/4 passed" in line for line in lines)
    checklist = lines[
        next(i for i, line in enumerate(lines) if "Checklist by capability" in line) :
    ]
    row = next(line for line in checklist if " transition " in line)
    assert "FAIL" in row and "transition_rejects_stale_revision (failed)" in row
    assert any("PASS" in line and " heartbeat " in line for line in checklist)


def test_results_group_by_the_capability_their_title_names() -> None:
    results = [
        ClauseResult("a", "claim: one", "passed"),
        ClauseResult("b", "heartbeat: two", "failed"),
        ClauseResult("c", "claim: three", "skipped"),
        ClauseResult(MACHINE, "state machine: four", "passed"),
    ]
    groups = by_capability(results)
    assert list(groups) == ["claim", "heartbeat", "state machine"]
    assert [r.name for r in groups["claim"]] == ["a", "c"]
    names = {capability for _, title in list_clauses() for capability in [title.split(":")[0]]}
    assert {"claim", "transition", "heartbeat", "documents", "delete"} <= names


def test_a_terminal_that_takes_only_ascii_gets_escapes_not_a_crash() -> None:
    spec = "tests.conformance.broken_stores:TransitionIgnoresRevisionHarness"
    ran = subprocess.run(
        [sys.executable, "-m", "streamline_testing.conformance", spec, "--clause", "transition"],
        capture_output=True,
        text=True,
        encoding="ascii",
        errors="strict",
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
    )
    assert ran.returncode == 1, ran.stdout + ran.stderr  # clauses failed; the runner did not
    assert "UnicodeEncodeError" not in ran.stdout + ran.stderr
    assert "failed in" in ran.stdout
