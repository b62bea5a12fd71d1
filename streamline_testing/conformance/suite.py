"""Running the suite without pytest: each clause and the state machine, one result each.

This is what ``streamline-conformance`` does, and what a test can call to run
the suite against a store programmatically::

    results = run_suite(MyHarness, profile="dev")
    failed = [r.name for r in results if r.outcome == "failed"]
"""

from __future__ import annotations

import contextlib
import io
import time
import traceback
import unittest
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from streamline_testing.conformance.contract import StoreContract, clause_names
from streamline_testing.conformance.crash import CrashRecovery
from streamline_testing.conformance.harness import StoreHarness
from streamline_testing.conformance.machine import StoreStateMachine
from streamline_testing.conformance.profiles import profile_name

__all__ = [
    "CRASH",
    "MACHINE",
    "ClauseResult",
    "by_capability",
    "list_clauses",
    "run_clause",
    "run_suite",
]

MACHINE = "state_machine"
"""The name of the state machine's row (the model-checked random walk)."""

_MACHINE_TITLE = "state machine: every operation agrees with an independent model"

CRASH = "crash_recovery"
"""The name of the engine-level crash property's row."""

_CRASH_TITLE = "crash: an engine dying at any store call loses nothing; each step commits once"

Outcome = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class ClauseResult:
    """The outcome of one clause for one harness.

    Attributes:
        name: The clause's name: its ``StoreContract`` method without
            ``test_`` (``claim_is_exclusive_while_lease_is_live``), or
            ``state_machine``.
        title: What the clause checks (its docstring's first line).
        outcome: ``passed``, ``failed`` or ``skipped``.
        message: The first line of the failure (or the skip reason); empty on a pass.
        details: The full failure: traceback, and for the state machine the
            shortest failing sequence of steps hypothesis found.
        seconds: How long the clause took.
    """

    name: str
    title: str
    outcome: Outcome
    message: str = ""
    details: str = ""
    seconds: float = 0.0

    @property
    def capability(self) -> str:
        """The part of the contract the clause checks: its title up to the colon.

        ``claim``, ``transition``, ``heartbeat``, ``find``, ``documents``, ...,
        ``second handle``, ``state machine``, ``crash``.
        """
        head, sep, _ = self.title.partition(":")
        return head.strip() if sep else self.name


def by_capability(results: Sequence[ClauseResult]) -> dict[str, list[ClauseResult]]:
    """``results`` grouped by :attr:`ClauseResult.capability`, groups in order of first appearance.

    Args:
        results: What :func:`run_suite` returned.

    Returns:
        Capability name to its results, each group in the given order.
    """
    groups: dict[str, list[ClauseResult]] = {}
    for result in results:
        groups.setdefault(result.capability, []).append(result)
    return groups


def _contract_class(harness: type[StoreHarness]) -> type[StoreContract]:
    if issubclass(harness, StoreContract):
        return harness
    return type(f"{harness.__name__}Contract", (harness, StoreContract), {})


def _machine_class(harness: type[StoreHarness]) -> type[StoreStateMachine]:
    if issubclass(harness, StoreStateMachine):
        return harness
    return type(f"{harness.__name__}StateMachine", (harness, StoreStateMachine), {})


def _crash_class(harness: type[StoreHarness]) -> type[CrashRecovery]:
    # Always a fresh subclass: it gets its own test function to apply settings to.
    bases = (harness,) if issubclass(harness, CrashRecovery) else (harness, CrashRecovery)
    return type(f"{harness.__name__}Crashes", bases, {})


def list_clauses() -> list[tuple[str, str]]:
    """``(name, title)`` of every clause, then the state machine and the crash property."""
    rows = []
    for method in clause_names(StoreContract):
        doc = (getattr(StoreContract, method).__doc__ or method).strip().splitlines()[0]
        rows.append((method.removeprefix("test_"), doc))
    rows.append((MACHINE, _MACHINE_TITLE))
    rows.append((CRASH, _CRASH_TITLE))
    return rows


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions[0]
        return f"{_first_line(inner)} (and {len(exc.exceptions) - 1} more distinct failures)"
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _run(name: str, title: str, call: Any) -> ClauseResult:
    out = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out):
            call()
    except unittest.SkipTest as exc:
        return ClauseResult(name, title, "skipped", str(exc), "", time.perf_counter() - start)
    except Exception as exc:
        details = "".join(traceback.format_exception(exc))
        if out.getvalue().strip():
            details = f"{out.getvalue().rstrip()}\n\n{details}"
        return ClauseResult(
            name, title, "failed", _first_line(exc), details, time.perf_counter() - start
        )
    return ClauseResult(name, title, "passed", seconds=time.perf_counter() - start)


def run_clause(
    harness: type[StoreHarness],
    name: str,
    *,
    profile: str = "dev",
    machine_settings: settings | None = None,
) -> ClauseResult:
    """Run one clause (or ``state_machine``) for ``harness``.

    Args:
        harness: A :class:`StoreHarness` subclass.
        name: A name from :func:`list_clauses`.
        profile: The hypothesis profile for the state machine: ``dev`` or ``ci``.
        machine_settings: Hypothesis settings for the state machine, instead
            of ``profile``'s.

    Returns:
        The clause's result; a failure never raises.
    """
    titles = dict(list_clauses())
    if name not in titles:
        raise ValueError(f"no clause named {name!r}")
    if name == MACHINE:
        machine = _machine_class(harness)
        chosen = machine_settings or settings.get_profile(profile_name(profile))

        def run_machine() -> None:
            run_state_machine_as_test(machine, settings=chosen)

        return _run(name, titles[name], run_machine)
    if name == CRASH:
        crash = _crash_class(harness)
        chosen = machine_settings or settings.get_profile(profile_name(profile))
        test = settings(chosen)(crash.test_crash_recovery)
        return _run(name, titles[name], lambda: test(crash()))
    contract = _contract_class(harness)
    return _run(name, titles[name], lambda: getattr(contract(), f"test_{name}")())


def run_suite(
    harness: type[StoreHarness],
    *,
    profile: str = "dev",
    select: Collection[str] | None = None,
    machine_settings: settings | None = None,
) -> list[ClauseResult]:
    """Run every clause and the state machine for ``harness``.

    Args:
        harness: A :class:`StoreHarness` subclass (it may already mix in
            ``StoreContract`` or ``StoreStateMachine``).
        profile: The hypothesis profile for the state machine: ``dev`` or ``ci``.
        select: Only clauses whose name contains one of these strings.
        machine_settings: Hypothesis settings for the state machine, instead
            of ``profile``'s.

    Returns:
        One result per clause, in contract order, then the state machine and
        the crash property.
    """
    results = []
    for name, _ in list_clauses():
        if select is not None and not any(part in name for part in select):
            continue
        results.append(
            run_clause(harness, name, profile=profile, machine_settings=machine_settings)
        )
    return results
