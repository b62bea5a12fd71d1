"""The ``streamline`` command: the durable demo, run inspection, and workers."""

from streamline_cli import schedules as schedules  # registers `streamline schedules`
from streamline_cli import versions as versions  # registers `streamline runs migrate|fork`
from streamline_cli.app import app, main

__all__ = ["app", "main"]
