"""The ``streamline`` command: the durable demo, run inspection, and workers."""

from streamline_cli.app import app, main

__all__ = ["app", "main"]
