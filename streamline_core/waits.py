"""What a suspended step's output looks like when its wait times out.

Model layer: imports nothing of streamline_core.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

__all__ = ["WaitResolution", "get_wait_resolution", "MARKER"]

MARKER = "__streamline_wait_resolution__"


class WaitResolution(BaseModel):
    """Output of a ``ctx.wait``/``ctx.wait_for`` step whose timeout expired.

    Stored as plain JSON (with a marker key) so the run stays a readable document;
    :func:`get_wait_resolution` turns a step output back into this model.

    Attributes:
        kind: Always ``"timeout"`` for now.
        wait_kind: ``"human"`` or ``"event"``: what the step was waiting for.
        event: The event name, for ``wait_for``.
        reason: The reason given to ``ctx.wait``.
    """

    kind: Literal["timeout"] = "timeout"
    wait_kind: str | None = None
    event: str | None = None
    reason: str | None = None

    def to_output(self) -> dict[str, Any]:
        """The JSON stored as the step's output."""
        return {MARKER: True, **self.model_dump(mode="json")}


def get_wait_resolution(output: Any) -> WaitResolution | None:
    """The :class:`WaitResolution` in a step output, or ``None`` for a real payload.

    Example:
        >>> res = get_wait_resolution(ctx.get_output("approval"))
        >>> if res and res.kind == "timeout": ...
    """
    if isinstance(output, dict) and output.get(MARKER) is True:
        return WaitResolution.model_validate({k: v for k, v in output.items() if k != MARKER})
    return None
