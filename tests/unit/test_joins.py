"""Child ids and join decisions: pure functions of values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from streamline_core._child_ids import child_run_id
from streamline_core._joins import ONE, Join, decide, join_wait
from streamline_core.run import RunError, RunStatus, WorkflowRun

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_child_ids_are_derived_and_differ_by_attempt_slot_and_epoch() -> None:
    base = child_run_id("01J0000000AAAA", "pay", 1, ("pos", 1))
    assert base == child_run_id("01J0000000AAAA", "pay", 1, ("pos", 1))
    assert len(base) == 26 and base.startswith("01J0000000")
    others = {
        child_run_id("01J0000000AAAA", "pay", 2, ("pos", 1)),
        child_run_id("01J0000000AAAA", "pay", 1, ("pos", 2)),
        child_run_id("01J0000000AAAA", "pay", 1, ("key", 1)),
        child_run_id("01J0000000AAAA", "pay", 1, ("key", "1")),
        child_run_id("01J0000000AAAA", "ship", 1, ("pos", 1)),
        child_run_id("01J0000000BBBB", "pay", 1, ("pos", 1)),
        child_run_id("01J0000000AAAA", "pay", 1, ("pos", 1), epoch=1),
    }
    assert base not in others and len(others) == 7


def _run(run_id: str, status: str, ended: float | None = None, **extra: Any) -> WorkflowRun:
    return WorkflowRun(
        id=run_id,
        workflow_id="kid",
        status=RunStatus(status),
        created_at=T0,
        updated_at=T0,
        ended_at=None if ended is None else T0 + timedelta(seconds=ended),
        **extra,
    )


def _join(mode: str, *ids: str) -> Join:
    return Join(ids=ids, mode=mode, deadline=None, owned=True)


def test_all_waits_for_every_child_and_keeps_input_order() -> None:
    kids = {"a": _run("a", "done", 2, output=1), "b": _run("b", "running")}
    assert decide(_join("all", "a", "b"), kids).kind == "wait"
    kids["b"] = _run("b", "done", 1, output=2)
    assert decide(_join("all", "b", "a"), kids).output == [2, 1]
    assert decide(_join(ONE, "a"), kids).output == 1


def test_all_fails_on_the_first_failed_child_and_names_the_losers() -> None:
    error = RunError(code="STEP_FAILED", message="boom")
    kids = {
        "a": _run("a", "running"),
        "b": _run("b", "failed", 5, error=error),
        "c": _run("c", "cancelled", 3),
        "d": _run("d", "waiting", detached=True),
    }
    decision = decide(_join("all", "a", "b", "c", "d"), kids)
    assert decision.kind == "failed"
    assert decision.child_id == "c"  # ended first
    assert decision.child_status == "cancelled"
    assert decision.losers == ("a",)  # active and not detached


def test_any_race_and_all_settled() -> None:
    error = RunError(code="X", message="no")
    kids = {
        "a": _run("a", "failed", 1, error=error),
        "b": _run("b", "done", 2, output="b"),
        "c": _run("c", "running"),
    }
    assert decide(_join("any", "a", "b", "c"), kids).output == "b"
    race = decide(_join("race", "a", "b", "c"), kids)
    assert (race.kind, race.child_id, race.losers) == ("failed", "a", ("c",))
    assert decide(_join("all_settled", "a", "b", "c"), kids).kind == "wait"
    kids["c"] = _run("c", "done", 3, output="c")
    settled = decide(_join("all_settled", "a", "b", "c"), kids).output
    assert settled == [
        {"status": "failed", "output": None, "error": {"code": "X", "message": "no"}},
        {"status": "done", "output": "b", "error": None},
        {"status": "done", "output": "c", "error": None},
    ]
    failed_all = {"a": kids["a"], "x": _run("x", "cancelled", 0.5)}
    assert decide(_join("any", "a", "x"), failed_all).child_id == "x"


def test_ties_go_to_input_order_and_a_missing_child_counts_as_failed() -> None:
    kids = {"a": _run("a", "done", 1, output="a"), "b": _run("b", "done", 1, output="b")}
    assert decide(_join("race", "b", "a"), kids).output == "b"
    missing = decide(_join("all", "a", "gone"), kids)
    assert missing.kind == "failed" and missing.child_status == "missing"
    assert missing.child_error is not None
    assert missing.child_error["code"] == "WORKFLOW_NOT_FOUND"


def test_the_join_wait_round_trips_and_is_due_at_the_sooner_of_recheck_and_deadline() -> None:
    wait = join_wait(["a", "b"], "any", deadline=T0, owned=False, recheck_at=T0 + timedelta(1))
    assert wait.kind == "children" and wait.until == T0
    assert Join.of(wait) == Join(ids=("a", "b"), mode="any", deadline=T0, owned=False)
    later = join_wait(["a"], "all", deadline=None, owned=True, recheck_at=T0)
    assert later.until == T0 and Join.of(later).deadline is None
