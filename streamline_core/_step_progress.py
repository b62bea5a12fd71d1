"""``StepProgress``: one executing step's checkpoint, as ``ctx.checkpoint`` and ``ctx.map`` keep it.

Context layer, below ``context``: imports ``_mapping``, ``_json`` and
``errors``. It holds the step's checkpoint as stored when the attempt began
and as this attempt wrote it since (only the lease holder writes it, so the
local copy stays exact), and turns each save into the relative paths the
runtime writes under ``steps.<i>.checkpoint``.

Stored shapes: ``{"value": v}`` for ``ctx.checkpoint(v)``; ``{"maps": {"<n>":
{"items": fingerprint, "count": len(items), "results": {"<index>": result}}}}``
for the step's n-th ``ctx.map``. A step uses one kind or the other, never both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from streamline_core._json import Unstorable, to_json_value
from streamline_core._mapping import fingerprint, json_items, run_map
from streamline_core.errors import ValidationError

__all__ = ["CheckpointWriter", "StepProgress"]


class CheckpointWriter(Protocol):
    """What a step's progress needs of the engine: one fenced write."""

    async def write_checkpoint(self, run_id: str, step_id: str, changes: Mapping[str, Any]) -> None:
        """Write ``changes`` (paths relative to the step's checkpoint; ``""`` is all of it)."""
        ...


class StepProgress:
    """The checkpoint of one attempt of one step."""

    def __init__(self, writer: CheckpointWriter, run_id: str, step_id: str, stored: Any) -> None:
        self._writer = writer
        self._run_id = run_id
        self._step_id = step_id
        self._stored: dict[str, Any] | None = stored if isinstance(stored, dict) else None
        self._maps = 0
        self._kind: str | None = None
        if self._stored is not None:
            self._kind = "value" if "value" in self._stored else "maps"

    @property
    def _where(self) -> str:
        return f"step {self._step_id!r}"

    def _use(self, kind: str) -> None:
        if self._kind is not None and self._kind != kind:
            raise ValidationError(
                f"{self._where} uses both ctx.map and ctx.checkpoint; a step keeps one kind "
                "of progress (split it into two steps)",
                run_id=self._run_id,
                step_id=self._step_id,
            )
        self._kind = kind

    @property
    def last_value(self) -> Any:
        """The value of the last ``checkpoint`` (``None`` when there is none)."""
        if self._stored is None:
            return None
        return self._stored.get("value")

    async def save(self, value: Any) -> None:
        """``ctx.checkpoint(value)``: one durable write."""
        try:
            stored = to_json_value(value, "checkpoint")
        except Unstorable as exc:
            raise ValidationError(
                f"{self._where}: ctx.checkpoint got a {exc.type_name} at {exc.path}, which "
                "cannot be stored (JSON-compatible values only)",
                run_id=self._run_id,
                step_id=self._step_id,
            ) from None
        self._use("value")
        doc = {"value": stored}
        await self._writer.write_checkpoint(self._run_id, self._step_id, {"": doc})
        self._stored = doc

    async def map(self, fn: Callable[[Any], Any], items: Any, concurrency: int | None) -> list[Any]:
        """``ctx.map``: run what is not saved yet, saving each batch of finished items."""
        if not callable(fn):
            raise ValidationError(f"{self._where}: ctx.map needs a callable, got {fn!r}")
        if concurrency is not None and (
            isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
        ):
            raise ValidationError(
                f"{self._where}: ctx.map concurrency must be a positive integer or None, "
                f"got {concurrency!r}"
            )
        values = json_items(items, self._where)
        self._use("maps")
        key = str(self._maps)
        self._maps += 1
        digest = fingerprint(values)
        maps = (self._stored or {}).get("maps") or {}
        saved = maps.get(key)
        done: dict[int, Any] = {}
        if isinstance(saved, dict) and saved.get("items") == digest:
            done = {int(i): r for i, r in (saved.get("results") or {}).items()}
            fresh = False
        else:
            fresh = True  # never saved, or saved for other items: start over

        async def save(batch: dict[int, Any]) -> None:
            nonlocal fresh
            results = {str(i): r for i, r in batch.items()}
            if fresh:
                entry = {"items": digest, "count": len(values), "results": results}
                if self._stored is None or "maps" not in self._stored:
                    changes: dict[str, Any] = {"": {"maps": {key: entry}}}
                else:
                    changes = {f"maps.{key}": entry}
                await self._writer.write_checkpoint(self._run_id, self._step_id, changes)
                if self._stored is None or "maps" not in self._stored:
                    self._stored = {"maps": {}}
                self._stored["maps"][key] = {**entry, "results": dict(results)}
                fresh = False
                return
            await self._writer.write_checkpoint(
                self._run_id,
                self._step_id,
                {f"maps.{key}.results.{i}": r for i, r in results.items()},
            )
            assert self._stored is not None
            self._stored["maps"][key]["results"].update(results)

        return await run_map(fn, values, done, concurrency, save, self._where)
