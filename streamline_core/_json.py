"""JSON-compatibility checks for everything a run stores (input, context, outputs, events)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel

__all__ = ["Unstorable", "to_json_value"]


class Unstorable(TypeError):
    """A value cannot be stored: ``path`` locates it, ``type_name`` names its type."""

    def __init__(self, path: str, type_name: str, why: str = "") -> None:
        super().__init__(f"{path}: {type_name}{(' ' + why) if why else ''}")
        self.path = path
        self.type_name = type_name


def to_json_value(value: Any, path: str = "value") -> Any:
    """Return ``value`` as plain JSON data, or raise :class:`Unstorable`.

    Accepted: ``None``, ``bool``, ``int``, finite ``float``, ``str``, ``list``/``tuple``,
    ``dict`` with ``str`` keys (nested), and pydantic models (dumped in JSON mode).
    Everything else (``datetime``, ``set``, ``bytes``, ``Decimal``, arbitrary objects)
    is refused: nothing is ever pickled or silently stringified.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unstorable(path, "float", "(not finite)")
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise Unstorable(f"{path}[{k!r}]", type(k).__name__, "(dict keys must be str)")
            out[k] = to_json_value(v, f"{path}[{k!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [to_json_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise Unstorable(path, type(value).__name__)
