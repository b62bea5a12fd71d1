"""The pure half of migrations and forks (``streamline_core._migration``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamline_core._migration import (
    check_step_map,
    counterparts,
    fork_steps,
    migration_patch,
)
from streamline_core.errors import InvalidStateError, ValidationError
from streamline_core.run import Lease, RunStatus, StepState, StepStatus, WorkflowRun

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _run(ids: list[str], cursor: str, **changes: object) -> WorkflowRun:
    at = ids.index(cursor)
    steps = [
        StepState(
            step_id=s,
            status=StepStatus.DONE if i < at else StepStatus.PENDING,
            output=f"out-{s}" if i < at else None,
        )
        for i, s in enumerate(ids)
    ]
    fields: dict[str, object] = {
        "id": "r1",
        "workflow_id": "wf",
        "workflow_version": "1",
        "current_step_id": cursor,
        "steps": steps,
        "created_at": NOW,
        "updated_at": NOW,
        "next_run_at": NOW,
        **changes,
    }
    return WorkflowRun.model_validate(fields)


def test_an_explicit_entry_wins_over_a_same_named_step() -> None:
    assert counterparts(["a", "b"], ["b", "c"], {"a": "b"}) == {"a": "b"}
    assert counterparts(["a", "b"], ["a", "b"], {"a": "b", "b": "a"}) == {"a": "b", "b": "a"}
    assert counterparts(["a", "x"], ["a", "y"], {}) == {"a": "a"}


@pytest.mark.parametrize(
    ("step_map", "message"),
    [
        (["a"], "must be a dict"),
        ({"a": 1}, r"step ids \(str\)"),
        ({"zz": "a"}, "not a step of the run's version"),
        ({"a": "zz"}, "not a step of version '2'"),
        ({"a": "b", "c": "b"}, "several old steps onto 'b'"),
    ],
)
def test_a_bad_step_map_names_what_is_wrong(step_map: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_step_map(step_map, ["a", "b", "c"], ["a", "b"], version="2")


def test_the_patch_keeps_the_wait_step_and_clears_the_lease() -> None:
    run = _run(
        ["a", "b", "c"],
        "b",
        status=RunStatus.WAITING,
        lease=Lease(owner="dead", expires_at=NOW - timedelta(seconds=1)),
        epoch=3,
    )
    run.steps[1] = StepState(step_id="b", status=StepStatus.WAITING, attempts=2)
    patch = migration_patch(
        run, version="2", new_ids=["n", "a", "b"], step_map={}, now=NOW, lease=None
    )
    assert patch["current_step_id"] == "b"
    assert [(s["step_id"], s["status"]) for s in patch["steps"]] == [
        ("n", StepStatus.SKIPPED),
        ("a", StepStatus.DONE),
        ("b", StepStatus.WAITING),
    ]
    assert patch["steps"][2]["attempts"] == 2
    assert (patch["lease"], patch["epoch"], patch["workflow_version"]) == (None, 4, "2")
    assert "status" not in patch and "wait" not in patch


def test_the_patch_refuses_live_leases_ended_runs_and_the_same_version() -> None:
    live = _run(["a"], "a", lease=Lease(owner="w", expires_at=NOW + timedelta(seconds=1)))
    with pytest.raises(InvalidStateError, match="being executed by worker 'w'"):
        migration_patch(live, version="2", new_ids=["a"], step_map={}, now=NOW, lease=None)
    done = _run(["a"], "a", status=RunStatus.DONE)
    with pytest.raises(InvalidStateError, match="done"):
        migration_patch(done, version="2", new_ids=["a"], step_map={}, now=NOW, lease=None)
    same = _run(["a"], "a")
    with pytest.raises(InvalidStateError, match="already"):
        migration_patch(same, version="1", new_ids=["a"], step_map={}, now=NOW, lease=None)


_ids = st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=6, unique=True)


@given(old=_ids, new=_ids, data=st.data())
def test_a_migrated_run_has_the_new_steps_done_or_skipped_before_the_cursor_pending_after(
    old: list[str], new: list[str], data: st.DataObject
) -> None:
    cursor = data.draw(st.sampled_from(old))
    run = _run(old, cursor)
    try:
        patch = migration_patch(run, version="2", new_ids=new, step_map={}, now=NOW, lease=None)
    except ValidationError:
        assert cursor not in new
        return
    at = new.index(cursor)
    statuses = [s["status"] for s in patch["steps"]]
    assert [s["step_id"] for s in patch["steps"]] == new
    assert all(s in (StepStatus.DONE, StepStatus.SKIPPED) for s in statuses[:at])
    assert all(s == StepStatus.PENDING for s in statuses[at:])
    for step in patch["steps"][:at]:
        carried = step["step_id"] in old and old.index(step["step_id"]) < old.index(cursor)
        assert (step["status"] == StepStatus.DONE) == carried
        assert step["output"] == (f"out-{step['step_id']}" if carried else None)


def test_a_fork_copies_finished_steps_before_from_step_only() -> None:
    source = _run(["a", "b", "c"], "c")
    steps = fork_steps(source, new_ids=["a", "x", "b", "c"], from_step="b", step_map={}, now=NOW)
    assert [(s.step_id, s.status, s.output) for s in steps] == [
        ("a", StepStatus.DONE, "out-a"),
        ("x", StepStatus.SKIPPED, None),
        ("b", StepStatus.PENDING, None),
        ("c", StepStatus.PENDING, None),
    ]
