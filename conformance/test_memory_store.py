"""InMemoryStore through the shipped conformance suite, as any backend author would run it."""

from __future__ import annotations

from streamline_core.store import Store
from streamline_testing import InMemoryStore
from streamline_testing.conformance import (
    Capabilities,
    CrashRecovery,
    StoreContract,
    StoreHarness,
    StoreStateMachine,
)


class MemoryStoreHarness(StoreHarness):
    """Fresh ``InMemoryStore`` per clause and per state-machine example."""

    capabilities = Capabilities(corrupt_documents=True)

    async def make_store(self) -> Store:
        return InMemoryStore()

    async def corrupt_document(self, store: Store, run_id: str) -> None:
        assert isinstance(store, InMemoryStore)
        store.raw(run_id)["steps"] = "garbage"  # a dict holds no undecodable bytes


class TestInMemoryStore(MemoryStoreHarness, StoreContract):
    """One test per clause of the Store contract."""


class MemoryStoreMachine(MemoryStoreHarness, StoreStateMachine):
    """The state machine, checked against the independent model."""


TestMemoryStoreMachine = MemoryStoreMachine.TestCase


class TestMemoryStoreCrashes(MemoryStoreHarness, CrashRecovery):
    """The engine on this store survives a worker dying at any store call."""
