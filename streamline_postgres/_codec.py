"""Runs to JSON and back, and patches to SQL (``jsonb_set`` chains with their guards)."""

from __future__ import annotations

import functools
import json
import types
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Union, get_args, get_origin

import pydantic
import pydantic_core
from pydantic import BaseModel, TypeAdapter

from streamline_core.errors import DataCorruptionError
from streamline_core.run import WorkflowRun, run_from_document
from streamline_core.store import UNSET

__all__ = ["encode_run", "encode_value", "load_run", "check_patch", "PatchSQL", "patch_sql"]

_MANAGED = frozenset({"id", "revision"})


def encode_run(run: WorkflowRun) -> str:
    """``run`` as compact JSON text, ``None`` fields left out (they are the defaults).

    Raises:
        DataCorruptionError: A value JSON cannot hold (NaN, an arbitrary object).
    """
    try:
        text = run.model_dump_json(exclude_none=True)
    except pydantic_core.PydanticSerializationError as exc:
        raise DataCorruptionError(
            f"run {run.id!r} cannot be stored as JSON: {exc}", run_id=run.id
        ) from None
    if "NaN" in text or "Infinity" in text:  # maybe only inside a string: the exact encoder says
        encode_value(run.model_dump(exclude_none=True), run.id)
    return text


def _default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} is not JSON")


_ENCODER = json.JSONEncoder(default=_default, allow_nan=False, separators=(",", ":"))


def encode_value(value: Any, run_id: str) -> str:
    """One patch value as JSON text (datetimes as ISO text with their offset).

    Raises:
        DataCorruptionError: A value JSON cannot hold: writing it would corrupt the run.
    """
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise DataCorruptionError(
            f"run {run_id!r} cannot be stored as JSON: {exc}", run_id=run_id
        ) from None


def load_run(text: str) -> WorkflowRun:
    """Validate a stored document; anything invalid raises ``DataCorruptionError``."""
    try:
        return WorkflowRun.model_validate_json(text)
    except pydantic.ValidationError:
        pass
    # Slow path, bad documents only: run_from_document words the error.
    return run_from_document(json.loads(text))


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


@functools.lru_cache(maxsize=1024)
def _walk(path: str) -> tuple[Any, bool, bool]:
    """``(type at path, parent is a list, a required field)`` through the run model.

    ``Any`` stands for "no constraint" (inside ``context``, ``output``...).
    """
    annotation: Any = WorkflowRun
    in_list = required = False
    for part in path.split("."):
        annotation = _without_none(annotation)
        in_list = required = False
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return Any, False, False  # ignored by the model, as in every store
            annotation, required = field.annotation, field.is_required()
        elif get_origin(annotation) is list:
            if not part.isdigit():
                raise ValueError(f"{part!r} is not a list index")
            annotation, in_list = get_args(annotation)[0], True
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif annotation is not Any:
            raise ValueError(f"{part!r} lies under a {annotation!r}, which has no fields")
    return annotation, in_list, required


def check_patch(patch: Mapping[str, Any], run_id: str) -> None:
    """Refuse a patch that would leave an invalid run, before anything is sent.

    The patch is applied by the server (``jsonb_set``), which would store a
    ``{"status": 7}`` without a murmur; each value is validated here against
    the run model's type at its path instead.

    Raises:
        DataCorruptionError: A path the store manages (``id``, ``revision``),
            a path the run cannot have, a removed required field or list
            element, or a value of the wrong type.
    """
    for path, value in patch.items():
        problem: str | None = None
        if path.partition(".")[0] in _MANAGED:
            problem = "managed by the store"
        else:
            try:
                annotation, in_list, required = _walk(path)
            except ValueError as exc:
                problem = str(exc)
            else:
                if value is UNSET:
                    if in_list or required:
                        problem = "cannot be removed"
                elif annotation is not Any:
                    try:
                        _adapter(annotation).validate_python(value)
                    except pydantic.ValidationError as exc:
                        problem = str(exc.errors()[0]["msg"])
        if problem is not None:
            raise DataCorruptionError(
                f"run {run_id!r}: patch path {path!r}: {problem}", run_id=run_id
            )


class PatchSQL:
    """A patch as SQL: the new ``doc`` expression, the guards, and their parameters.

    Attributes:
        doc: An expression over the row's ``doc`` (``jsonb_set``/``#-`` chain,
            then the new revision).
        doc_params: Its parameters, in order.
        guards: Conditions (ANDed into the WHERE) that hold only when every
            path's parent exists in the stored document.
        guard_params: Their parameters.
    """

    __slots__ = ("doc", "doc_params", "guard_params", "guards")

    def __init__(
        self, doc: str, doc_params: list[Any], guards: str, guard_params: list[Any]
    ) -> None:
        self.doc, self.doc_params = doc, doc_params
        self.guards, self.guard_params = guards, guard_params


@functools.lru_cache(maxsize=512)
def _shape(kinds: tuple[tuple[bool, int, bool], ...]) -> tuple[str, str]:
    # The SQL text depends only on the patch's shape (which paths set or
    # unset, which are nested), never on its values, so it is cached and
    # psycopg prepares it server-side after a few uses.
    doc = "doc"
    guards: list[str] = []
    for unset, depth, in_list in kinds:
        doc = f"({doc} #- %s::text[])" if unset else f"jsonb_set({doc}, %s::text[], %s::jsonb)"
        if depth > 1:
            guards.append(
                "(doc #> %s::text[]) IS NOT NULL"
                if in_list
                else "jsonb_typeof(doc #> %s::text[]) = 'object'"
            )
    doc = f"jsonb_set({doc}, '{{revision}}', to_jsonb(%s::bigint))"
    return doc, "".join(f" AND {g}" for g in guards)


def patch_sql(patch: Mapping[str, Any], new_revision: int, run_id: str) -> PatchSQL:
    """The SQL applying ``patch`` (already checked by :func:`check_patch`).

    jsonb_set silently does nothing under a missing parent and appends past
    the end of an array, where :func:`~streamline_core.store.apply_patch`
    refuses; the guards make the UPDATE match nothing instead, so the store
    can say why.
    """
    kinds: list[tuple[bool, int, bool]] = []
    doc_params: list[Any] = []
    guard_params: list[Any] = []
    for path, value in patch.items():
        parts = path.split(".")
        unset = value is UNSET
        _, in_list, _ = _walk(path)
        kinds.append((unset, len(parts), in_list))
        doc_params.append(parts)
        if not unset:
            doc_params.append(encode_value(value, run_id))
        if len(parts) > 1:
            guard_params.append(parts if in_list else parts[:-1])
    doc_params.append(new_revision)
    doc, guards = _shape(tuple(kinds))
    return PatchSQL(doc, doc_params, guards, guard_params)
