"""The suite's public surface: pinned exports, every clause named and documented."""

from __future__ import annotations

import re
from pathlib import Path

import streamline_testing.conformance as conformance
from streamline_testing.conformance import StoreContract, list_clauses

ROOT = Path(__file__).resolve().parents[2]


def test_exports_are_pinned() -> None:
    assert sorted(conformance.__all__) == [
        "Capabilities",
        "ClauseResult",
        "CrashRecovery",
        "StoreContract",
        "StoreHarness",
        "StoreStateMachine",
        "list_clauses",
        "profile_name",
        "run_clause",
        "run_suite",
    ]


def test_every_clause_names_its_contract_operation_in_its_docstring() -> None:
    operations = (
        "documents",
        "create",
        "get",
        "claim_limited",
        "claim",
        "transition",
        "heartbeat",
        "revision",
        "durability",
        "find",
        "count",
        "delete",
        "errors",
        "close",
        "second handle",
        "state machine",
        "crash",
    )
    for name, title in list_clauses():
        assert re.match(rf"({'|'.join(operations)}): \S", title), f"{name}: {title!r}"
        if name not in ("state_machine", "crash_recovery"):
            assert getattr(StoreContract, f"test_{name}").__doc__.strip().startswith(title)


def test_clause_names_are_unique() -> None:
    names = [name for name, _ in list_clauses()]
    assert len(names) == len(set(names))


def test_the_docs_list_every_clause() -> None:
    doc = (ROOT / "docs" / "conformance.md").read_text()
    missing = [name for name, _ in list_clauses() if f"`{name}`" not in doc]
    assert not missing, f"docs/conformance.md does not list {missing}"
