"""The harness: how the conformance suite gets stores from a backend author.

A harness has one obligation, :meth:`StoreHarness.make_store`, which returns a
fresh, empty store. Everything else is optional and documented below. The
suite mixes the harness into :class:`~streamline_testing.conformance.StoreContract`
and :class:`~streamline_testing.conformance.StoreStateMachine`::

    class MyHarness(StoreHarness):
        async def make_store(self) -> Store:
            return MyStore(...)

    class TestMyStore(MyHarness, StoreContract): ...

    class MyStoreMachine(MyHarness, StoreStateMachine): ...

    TestMyStoreMachine = MyStoreMachine.TestCase

A harness class is instantiated with no arguments (pytest and the runner both
do so), so read connection settings from the environment in ``make_store``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from streamline_core.store import Store

__all__ = ["Capabilities", "StoreHarness"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the suite may assume about a backend, beyond the Store contract.

    Every default is the strict choice: a harness only sets a flag to tell the
    suite about something *extra* it can test, or to narrow a knob for a
    backend that cannot do more. Each flag widens or narrows a documented set
    of checks; none of them turns a contract clause off.

    Attributes:
        second_handle: The harness implements
            :meth:`StoreHarness.another_handle`: a second, independent
            connection to the same data. The suite then races operations
            across both handles (claims, creates, compare-and-set) and checks
            that a write through one handle is visible through the other.
            Without it, races run on one handle and the cross-handle clause is
            skipped.
        race_width: How many concurrent calls each race clause makes (at
            least 2). Lower it only for a backend whose connection pool cannot
            serve that many at once.
        corrupt_documents: The harness implements
            :meth:`StoreHarness.corrupt_document`: it can damage a stored
            document behind the store's back. The suite then checks that a
            claim meeting a corrupt document still leases and returns the
            valid runs beside it. Without it, that clause is skipped.
    """

    second_handle: bool = False
    race_width: int = 8
    corrupt_documents: bool = False

    def __post_init__(self) -> None:
        if self.race_width < 2:
            raise ValueError(f"race_width must be at least 2, not {self.race_width}")


class StoreHarness:
    """Base class of a backend's conformance harness.

    Subclass it, implement :meth:`make_store`, and mix the subclass into
    :class:`~streamline_testing.conformance.StoreContract` (example-based
    clauses) and :class:`~streamline_testing.conformance.StoreStateMachine`
    (the model-checked state machine). The suite never checks a store's
    class, only its behaviour: ``make_store`` may return any object with the
    :class:`~streamline_core.store.Store` operations.

    Attributes:
        capabilities: The backend's :class:`Capabilities` (strict defaults).
    """

    capabilities: ClassVar[Capabilities] = Capabilities()

    async def make_store(self) -> Store:
        """Return a fresh, empty store, ready to use.

        Called once per contract clause and once per state-machine example, on
        the event loop that will drive the store. Stores must not share data
        with each other.

        Returns:
            A store holding no runs.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement make_store()")

    async def another_handle(self, store: Store) -> Store:
        """Return a second handle on ``store``'s data (its own connection).

        Only called when ``capabilities.second_handle`` is true.

        Args:
            store: A store made by :meth:`make_store`.

        Returns:
            Another store object that reads and writes the same runs.
        """
        raise NotImplementedError(
            f"{type(self).__name__} sets capabilities.second_handle but does not "
            "implement another_handle()"
        )

    async def corrupt_document(self, store: Store, run_id: str) -> None:
        """Damage the stored document of ``run_id`` behind the store's back.

        Only called when ``capabilities.corrupt_documents`` is true, on a run
        the suite created through ``store`` (unleased, due, claimable).
        Write straight to the storage, as a bad migration or a disk fault
        would: make the document as unreadable as the storage can hold (for
        a store of JSON text, text that is not JSON, like ``{not json``; for
        a document database, a document that is no valid run, like
        ``steps`` set to a string) while leaving whatever the store's claim
        selects on (status, due time, lease, priority columns) as it was.

        Args:
            store: A store made by :meth:`make_store`.
            run_id: The run to damage.
        """
        raise NotImplementedError(
            f"{type(self).__name__} sets capabilities.corrupt_documents but does not "
            "implement corrupt_document()"
        )

    async def dispose(self, store: Store) -> None:
        """Release a store the suite is done with (default: ``await store.close()``).

        Called once for every store and handle the suite obtained, second
        handles first, also after a failing check. Override it to drop a
        database or delete a file as well.

        Args:
            store: A store made by :meth:`make_store` or :meth:`another_handle`.
        """
        await store.close()
