"""Hypothesis profile for the conformance runs when ``tests/`` is not collected too.

The project's ``tests/conftest.py`` registers and loads ``dev``/``ci`` from
``$HYPOTHESIS_PROFILE``; when it is part of the session its profile stands. Run
alone (``pytest conformance``), the suite's own profile of that name is loaded.
"""

from __future__ import annotations

import os

from hypothesis import settings
from hypothesis.errors import InvalidArgument

from streamline_testing.conformance import profile_name

_wanted = os.environ.get("HYPOTHESIS_PROFILE", "dev")
try:
    settings.get_profile(_wanted)  # the project's conftest got here first
except InvalidArgument:
    settings.load_profile(profile_name(_wanted if _wanted in ("dev", "ci") else "dev"))
