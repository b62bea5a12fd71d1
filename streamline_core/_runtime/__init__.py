"""The engine's parts, below the façade (``Engine``, ``Workflow``, ``Runs``).

Imports go one way, top to bottom (an import-linter ``layers`` contract in
pyproject.toml keeps it so)::

    control · delivery · creation     run control, events, new runs   (client operations)
    worker                            the claim loop
    dispatch                          local execution: leased runs onto tasks, drain
    heartbeats · executor             lease renewal; driving one run through its steps
    outcomes                          a step's outcome as one commit
    commits · reads                   the fenced commit and client CAS loops; scoped reads
    runtime                           what every part shares (the only thing they receive)
    emitter · watchers · registry · inflight

No part imports ``streamline_core.engine``, ``workflow`` or ``runs``; each
receives the :class:`~streamline_core._runtime.runtime.Runtime` and the
parts below it that it calls.
"""
