"""The entry-point form of the tracing plugin: one process-wide instance.

Name it in your project's ``pyproject.toml`` and every engine in the process
loads it (unless ``STREAMLINE_DISABLE_PLUGINS=otel``)::

    [project.entry-points.streamline]
    otel = "streamline_otel.plugin:tracing"

It uses the global tracer provider (``opentelemetry.trace.set_tracer_provider``,
which may be set after this import). Importing :mod:`streamline_otel` alone
creates no instance; pass ``StreamlineTracing(...)`` to ``Engine(plugins=...)``
for an explicit provider or options.
"""

from __future__ import annotations

from typing import Final

from streamline_otel._tracing import StreamlineTracing

__all__ = ["tracing"]

tracing: Final = StreamlineTracing()
"""The instance the ``streamline`` entry point names."""
