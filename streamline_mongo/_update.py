"""Store patches -> MongoDB update documents.

A patch (``{"steps.1": {...}, "context.k": 3, "meta.x": UNSET}``) becomes
``$set``/``$unset`` on exactly those paths plus ``$inc`` of ``revision``:
never a whole-document rewrite, so concurrent writers of other fields are
not clobbered and the write stays small.

Two checks keep the write all-or-nothing, as in the in-memory store:

* :func:`patch_problem` validates each value against the run model before
  anything is sent. MongoDB would happily store ``{"status": 7}``; the
  in-memory store refuses it, and so do we.
* :func:`index_guards` adds filter clauses requiring every list element a
  path addresses (``steps.3``) to exist. MongoDB would pad the array with
  nulls and leave a document no reader can load.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from typing import Any, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel, TypeAdapter

from streamline_core.run import WorkflowRun
from streamline_core.store import UNSET

from ._documents import ACTIVE_MARK, KEY_HOLD, OUTPUT_OF_STEP, STORE_FIELDS, WRITE_MARK, to_storage
from ._query import ACTIVE
from ._types import Document

__all__ = ["update_for_patch", "patch_problem", "index_guards", "list_index_paths"]

_STORE_MANAGED = frozenset({"id", "_id", "revision", *STORE_FIELDS})


def update_for_patch(patch: Mapping[str, Any], write_id: str | None = None) -> Document:
    """The update document for ``patch``: touched paths only, ``revision`` via ``$inc``.

    A run that ends (or changes its key) also gives up its hold on the
    idempotency key, so a later create may take the key. A status change
    also moves the ``is_active`` marker the partial indexes filter on, and
    ``write_id`` (when given) marks the new revision as this write's.
    """
    to_set: Document = {}
    to_unset: Document = {}
    shared = _output_step(patch)
    for path, value in patch.items():
        if path == "output":
            # The final output is the last step's, written in the same patch:
            # store it once (in the step) and point at it.
            if shared is not None:
                to_unset["output"] = ""
                to_set[OUTPUT_OF_STEP] = shared
                continue
            to_unset[OUTPUT_OF_STEP] = ""
        if value is UNSET:
            to_unset[path] = ""
        else:
            to_set[path] = to_storage(value)
    ends = "status" in to_set and to_set["status"] not in ACTIVE
    if "status" in to_set:
        to_set[ACTIVE_MARK] = not ends
    if write_id is not None:
        to_set[WRITE_MARK] = write_id
    if ends or "idempotency_key" in patch:
        to_unset[KEY_HOLD] = ""
    update: Document = {}
    if to_set:
        update["$set"] = to_set
    if to_unset:
        update["$unset"] = to_unset
    update["$inc"] = {"revision": 1}
    return update


def _output_step(patch: Mapping[str, Any]) -> int | None:
    """The index ``i`` when ``patch`` ends the run with ``output`` being ``steps.i``'s output."""
    output = patch.get("output")
    if output is None or patch.get("status") != "done":
        return None
    for path, value in patch.items():
        if (
            path.startswith("steps.")
            and isinstance(value, Mapping)
            and value.get("output") is output
        ):
            index = path[6:]
            if index.isdigit():
                return int(index)
    return None


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


@functools.cache
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def patch_problem(patch: Mapping[str, Any]) -> str | None:
    """Why applying ``patch`` would leave an invalid run, or ``None`` when it would not.

    Walks each dotted path through the ``WorkflowRun`` model and validates the
    value against the type found there (paths into ``Any`` values such as
    ``context.*`` or ``input`` accept any value).
    """
    for path, value in patch.items():
        problem = _path_problem(path, value)
        if problem is not None:
            return problem
    return None


def _path_problem(path: str, value: Any) -> str | None:
    parts = path.split(".")
    if parts[0] in _STORE_MANAGED:
        return f"patch path {path!r}: {parts[0]!r} is managed by the store"
    annotation: Any = WorkflowRun
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        annotation = _without_none(annotation)
        model = _model(annotation)
        origin = get_origin(annotation)
        if model is not None:
            field = model.model_fields.get(part)
            if field is None:
                return None  # unknown keys are ignored by the model, as in every store
            if last and value is UNSET:
                return (
                    f"patch path {path!r}: required field removed" if field.is_required() else None
                )
            annotation = field.annotation
        elif origin is list:
            if not part.isdigit():
                return f"patch path {path!r}: {part!r} is not a list index"
            if last and value is UNSET:
                return f"patch path {path!r}: a list element cannot be removed"
            annotation = get_args(annotation)[0]
        elif origin is dict:
            if last and value is UNSET:
                return None
            annotation = get_args(annotation)[1]
        elif annotation is Any:
            return None
        else:
            return f"patch path {path!r}: {'.'.join(parts[:i])!r} has no fields"
    if value is UNSET:
        return None
    try:
        _adapter(annotation).validate_python(value)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        return f"patch path {path!r}: {first['msg']}"
    return None


def list_index_paths(patch: Mapping[str, Any]) -> dict[str, str]:
    """Each list element a patch path goes through (``"steps.3"``), with a
    required string field of that element type (``"step_id"``)."""
    found: dict[str, str] = {}
    for path in patch:
        parts = path.split(".")
        annotation: Any = WorkflowRun
        for i, part in enumerate(parts):
            annotation = _without_none(annotation)
            model = _model(annotation)
            if model is not None:
                field = model.model_fields.get(part)
                if field is None:
                    break
                annotation = field.annotation
            elif get_origin(annotation) is list and part.isdigit():
                element = _model(get_args(annotation)[0])
                key = _required_str_field(element) if element is not None else None
                if key is not None:
                    found[".".join(parts[: i + 1])] = key
                annotation = get_args(annotation)[0]
            else:
                break
    return found


def _required_str_field(model: type[BaseModel]) -> str | None:
    for name, field in model.model_fields.items():
        if field.is_required() and field.annotation is str:
            return name
    return None


def index_guards(patch: Mapping[str, Any]) -> Document:
    """Filter clauses that hold only if every list element ``patch`` addresses exists.

    ``{"steps.3.step_id": {"$gte": ""}}`` matches exactly when element 3
    exists (a missing value is null, which no string comparison matches; the
    same on MongoDB and mongomock).
    """
    return {f"{prefix}.{key}": {"$gte": ""} for prefix, key in list_index_paths(patch).items()}
