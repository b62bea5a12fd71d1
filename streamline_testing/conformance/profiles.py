"""Hypothesis profiles of the conformance suite: ``dev`` (fast) and ``ci`` (deeper).

They are registered under prefixed names (``streamline-conformance-dev``,
``streamline-conformance-ci``) so they never replace a project's own ``dev``
or ``ci`` profile. The runner loads one with ``--profile``; under pytest the
suite uses whatever profile the project loaded, and a project may load these::

    from hypothesis import settings
    from streamline_testing.conformance import profile_name

    settings.load_profile(profile_name("ci"))

=========  ============  ===================  ==========================
profile    max_examples  stateful_step_count  state-machine steps in all
=========  ============  ===================  ==========================
``dev``    25            40                   about 900
``ci``     150           80                   about 9,000
=========  ============  ===================  ==========================
"""

from __future__ import annotations

from typing import Final, Literal

from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import InvalidArgument

__all__ = ["PROFILES", "Profile", "profile_name"]

Profile = Literal["dev", "ci"]

PROFILES: Final[dict[str, dict[str, int]]] = {
    "dev": {"max_examples": 25, "stateful_step_count": 40},
    "ci": {"max_examples": 150, "stateful_step_count": 80},
}
"""The size of each profile. Both also set ``deadline=None`` and suppress health checks
(as hypothesis' own state-machine ``TestCase`` does), and skip the slow ``explain`` phase."""


def profile_name(profile: str) -> str:
    """Register the suite's profiles (once) and return the hypothesis name of ``profile``.

    Args:
        profile: ``"dev"`` or ``"ci"``.

    Returns:
        The registered name, for ``settings.load_profile`` or ``settings.get_profile``.

    Raises:
        ValueError: For another profile name.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown conformance profile {profile!r}; use one of {list(PROFILES)}")
    for name, sizes in PROFILES.items():
        full = f"streamline-conformance-{name}"
        try:
            settings.get_profile(full)
        except InvalidArgument:
            settings.register_profile(
                full,
                deadline=None,
                # The explain phase annotates a failure with "or any other generated
                # value" hints; on a state machine it costs tens of seconds per failure.
                phases=[p for p in Phase if p is not Phase.explain],
                suppress_health_check=list(HealthCheck),
                max_examples=sizes["max_examples"],
                stateful_step_count=sizes["stateful_step_count"],
            )
    return f"streamline-conformance-{profile}"
