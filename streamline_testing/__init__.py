"""Test support for Streamline: an in-memory store, a fake clock, a pytest plugin.

``streamline_testing.conformance`` holds the reusable Store conformance suite
(needs the ``testing`` extra).
"""

from streamline_testing.fake_clock import FakeClock
from streamline_testing.memory_store import InMemoryStore

__all__ = ["FakeClock", "InMemoryStore"]
