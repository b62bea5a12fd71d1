"""The conformance suite catches broken stores, and names the clause each one breaks.

Each store in ``broken_stores`` violates one clause. The suite is run the way
the runner runs it (``run_suite``, no pytest collection); the clause named for
the violation must fail, and so must the state machine for the stores listed
in ``MACHINE_CATCHES``. A correct store passes every clause.
"""

from __future__ import annotations

import pytest
from broken_stores import BROKEN_STORES, FLOW_MACHINE_CATCHES, MACHINE_CATCHES, harness_for
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from streamline_testing import InMemoryStore
from streamline_testing.conformance import ClauseResult, list_clauses, run_clause, run_suite
from streamline_testing.conformance.limits import FlowControlMachine
from streamline_testing.conformance.suite import CRASH, MACHINE

# Deterministic and quick: a fixed sequence of examples, no shrinking (only
# *whether* the machine fails matters here, not its smallest failing example).
FIND_ONLY = settings(
    max_examples=100,
    stateful_step_count=40,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


FLOW_MACHINE = "flow_control_state_machine"
CLAUSES = [name for name, _ in list_clauses() if name not in (MACHINE, CRASH, FLOW_MACHINE)]


def _failed(results: list[ClauseResult]) -> dict[str, str]:
    return {r.name: r.message for r in results if r.outcome == "failed"}


def test_a_correct_store_passes_every_clause() -> None:
    results = run_suite(harness_for(InMemoryStore), machine_settings=FIND_ONLY)
    assert _failed(results) == {}
    assert [r.name for r in results] == [name for name, _ in list_clauses()]
    assert {r.name for r in results if r.outcome == "skipped"} == {
        "second_handle_sees_the_same_data"
    }


@pytest.mark.parametrize(
    ("store_class", "clause"),
    list(BROKEN_STORES.items()),
    ids=[store.__name__ for store in BROKEN_STORES],
)
def test_each_broken_store_fails_the_clause_it_violates(
    store_class: type[InMemoryStore], clause: str
) -> None:
    # The clauses only: the state machine has its own teeth test below.
    results = run_suite(harness_for(store_class), select=CLAUSES)
    failed = _failed(results)
    assert clause in failed, f"{store_class.__name__} passed {clause}; failures: {failed}"
    assert failed[clause], "a failing clause reports the first line of its failure"


@pytest.mark.parametrize("store_class", MACHINE_CATCHES, ids=lambda s: s.__name__)
def test_the_state_machine_alone_catches_each_broken_store(
    store_class: type[InMemoryStore],
) -> None:
    result = run_clause(harness_for(store_class), "state_machine", machine_settings=FIND_ONLY)
    assert result.outcome == "failed", f"the state machine passed {store_class.__name__}"
    assert "Falsifying" in result.details or "state." in result.details


def test_a_failing_clause_reports_its_failure_without_raising() -> None:
    result = run_clause(
        harness_for(next(iter(BROKEN_STORES))), "claim_is_exclusive_while_lease_is_live"
    )
    assert result.outcome == "failed"
    assert result.message.startswith("AssertionError: claim by w2")
    assert "Traceback" in result.details
    assert result.title.startswith("claim:")


def test_unknown_clause_names_are_refused() -> None:
    with pytest.raises(ValueError, match="no clause named"):
        run_clause(harness_for(InMemoryStore), "claim_is_fast")


def test_the_crash_property_catches_a_store_that_loses_writes() -> None:
    from broken_stores import LosesTheLastWrite

    result = run_clause(
        harness_for(LosesTheLastWrite), "crash_recovery", machine_settings=FIND_ONLY
    )
    assert result.outcome == "failed", "the crash property passed a store that loses writes"


def test_the_crash_property_passes_a_correct_store() -> None:
    result = run_clause(harness_for(InMemoryStore), "crash_recovery", machine_settings=FIND_ONLY)
    assert result.outcome == "passed", result.details


@pytest.mark.parametrize("store_class", FLOW_MACHINE_CATCHES, ids=lambda s: s.__name__)
def test_the_flow_control_machine_alone_catches_each_broken_limited_store(
    store_class: type[InMemoryStore],
) -> None:
    machine = type("Machine", (FlowControlMachine,), {"harness": harness_for(store_class)()})
    with pytest.raises(AssertionError):
        run_state_machine_as_test(machine, settings=FIND_ONLY)


def test_the_flow_control_machine_passes_a_correct_store() -> None:
    machine = type("Machine", (FlowControlMachine,), {"harness": harness_for(InMemoryStore)()})
    run_state_machine_as_test(machine, settings=FIND_ONLY)
