"""``__all__`` of every shipped package is pinned: changing it is a deliberate act.

``streamline_core`` and ``streamline_testing`` are pinned in tests/unit/test_exports.py.
"""

from __future__ import annotations

import importlib

import pytest

PINNED = {
    "streamline_sqlite": {"SQLiteStore", "from_url"},
    "streamline_mongo": {"MongoStore", "from_url"},
    "streamline_cli": {"app", "main"},
    "streamline_otel": {"StreamlineTracing"},
}


@pytest.mark.parametrize("package", sorted(PINNED))
def test_all_is_pinned(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{package}.__all__ lists a name twice"
    assert set(exported) == PINNED[package]


@pytest.mark.parametrize("package", sorted(PINNED))
def test_every_exported_name_is_importable(package: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {package} import *", namespace)
    for name in PINNED[package]:
        assert namespace.get(name) is not None, f"{package}.{name} is in __all__ but missing"


def test_the_otel_entry_point_object_is_a_tracing_plugin() -> None:
    from streamline_otel import StreamlineTracing
    from streamline_otel.plugin import __all__ as plugin_all
    from streamline_otel.plugin import tracing

    assert plugin_all == ["tracing"]
    assert isinstance(tracing, StreamlineTracing)
