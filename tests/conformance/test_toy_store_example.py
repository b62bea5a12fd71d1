"""The toy store of docs/conformance.md passes the suite, and the doc shows it verbatim."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from streamline_testing.conformance import StoreContract, StoreStateMachine

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "toy_store.py"
DOC = ROOT / "docs" / "conformance.md"

_spec = importlib.util.spec_from_file_location("toy_store_example", EXAMPLE)
assert _spec is not None and _spec.loader is not None
toy_store = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = toy_store
_spec.loader.exec_module(toy_store)


class TestToyStore(toy_store.ToyStoreHarness, StoreContract):
    """Every contract clause, against the toy store."""


class ToyStoreMachine(toy_store.ToyStoreHarness, StoreStateMachine):
    """The state machine, against the toy store."""


TestToyStoreMachine = ToyStoreMachine.TestCase


def test_the_doc_shows_the_example_file_verbatim() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert EXAMPLE.read_text() in blocks, "docs/conformance.md must embed toy_store.py unchanged"
