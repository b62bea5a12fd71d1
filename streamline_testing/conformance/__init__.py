"""The Store conformance suite: check a backend against the Store contract.

A backend author writes one harness class and gets every check::

    from streamline_testing.conformance import (
        CrashRecovery, StoreContract, StoreHarness, StoreStateMachine,
    )

    class MyStoreHarness(StoreHarness):
        async def make_store(self) -> Store:      # the one obligation: a fresh, empty store
            return MyStore(...)

    class TestMyStore(MyStoreHarness, StoreContract):  # one pytest test per contract clause
        pass

    class MyStoreMachine(MyStoreHarness, StoreStateMachine):
        pass

    TestMyStoreMachine = MyStoreMachine.TestCase       # the model-checked state machine

    class TestMyStoreCrashes(MyStoreHarness, CrashRecovery):  # the engine-level crash property
        pass

or, without pytest, ``streamline-conformance mypkg.module:MyStoreHarness``.

Parts:

- :class:`StoreHarness`, :class:`Capabilities` — how the suite gets stores.
- :class:`StoreContract` — one example-based test per clause of the contract
  in ``streamline_core.store``'s docstring, each named for its clause.
- :class:`StoreStateMachine` — a hypothesis state machine with several
  workers and runs, checked after every step against an independent model.
- :class:`CrashRecovery` — an engine on the store dies at a random store call
  (before it, or after it with the answer lost); a fresh engine must finish
  every run with each step committed once.
- :func:`run_suite` / :class:`ClauseResult` — run it all programmatically
  (what the ``streamline-conformance`` runner does).
- :func:`profile_name` — the suite's hypothesis profiles, ``dev`` and ``ci``.

Everything drives its own event loop: no asyncio plugin or configuration is
needed. See ``docs/conformance.md``.
"""

from streamline_testing.conformance.contract import StoreContract
from streamline_testing.conformance.crash import CrashRecovery
from streamline_testing.conformance.harness import Capabilities, StoreHarness
from streamline_testing.conformance.machine import StoreStateMachine
from streamline_testing.conformance.profiles import profile_name
from streamline_testing.conformance.suite import ClauseResult, list_clauses, run_clause, run_suite

__all__ = [
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
