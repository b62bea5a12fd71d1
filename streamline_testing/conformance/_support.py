"""Shared helpers of the conformance suite: times, run documents, a guarded store."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from streamline_core.errors import WorkflowError
from streamline_core.run import RunPage, RunStatus, WorkflowRun
from streamline_core.store import RunQuery, Store

__all__ = [
    "LEASE",
    "T0",
    "BackendErrorEscaped",
    "GuardedStore",
    "at",
    "diff_docs",
    "make_doc",
    "non_utc_datetime",
    "observe",
    "step_doc",
]

T0 = datetime(2030, 1, 1, tzinfo=UTC)
"""The suite's epoch. Every time it uses is whole milliseconds after it."""

LEASE = 30.0
"""The lease length (seconds) the suite claims and heartbeats with."""


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def step_doc(step_id: str, status: str = "pending", **fields: Any) -> dict[str, Any]:
    """A complete stored ``StepState`` document."""
    doc: dict[str, Any] = {
        "step_id": step_id,
        "status": status,
        "attempts": 0,
        "started_at": None,
        "ended_at": None,
        "output": None,
        "error": None,
        "wait": None,
        "checkpoint": None,
        "compensation": None,
    }
    doc.update(fields)
    return doc


def make_doc(run_id: str, **fields: Any) -> dict[str, Any]:
    """A complete stored run document (every field of ``WorkflowRun``), as plain values.

    Defaults describe a fresh, unleased, due ``running`` run of workflow ``wf``
    with two pending steps, created at ``T0``.
    """
    doc: dict[str, Any] = {
        "id": run_id,
        "workflow_id": "wf",
        "workflow_version": "1",
        "tenant_id": None,
        "parent_run_id": None,
        "parent_step_id": None,
        "detached": False,
        "status": "running",
        "paused": False,
        "current_step_id": "s0",
        "steps": [step_doc("s0"), step_doc("s1")],
        "context": {},
        "input": None,
        "output": None,
        "error": None,
        "wait": None,
        "mailbox": [],
        "next_run_at": T0,
        "priority": 0,
        "lease": None,
        "recoveries": 0,
        "epoch": 0,
        "gotos": 0,
        "compensation": None,
        "revision": 0,
        "idempotency_key": None,
        "concurrency_key": None,
        "concurrency_limit": None,
        "rate_key": None,
        "rate_limit": None,
        "rate_period": None,
        "began_at": None,
        "meta": {},
        "created_at": T0,
        "updated_at": T0,
        "ended_at": None,
    }
    unknown = set(fields) - set(doc)
    if unknown:
        raise TypeError(f"unknown run fields {sorted(unknown)}")
    doc.update(fields)
    return doc


def observe(run: WorkflowRun) -> dict[str, Any]:
    """A run returned by a store, as a plain document comparable with ``make_doc`` output."""
    doc = run.model_dump()
    # StrEnum members compare equal to their values; make them plain for readable diffs.
    doc["status"] = str(doc["status"])
    for step in doc["steps"]:
        step["status"] = str(step["status"])
    # An error without a traceback reads as one written before errors had the field.
    for holder in (doc, *doc["steps"]):
        error = holder.get("error")
        if isinstance(error, dict) and error.get("traceback") is None:
            error.pop("traceback", None)
    return doc


def diff_docs(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> str:
    """A readable account of the top-level fields where two run documents differ."""
    lines = []
    for key in sorted(set(expected) | set(actual)):
        want, got = expected.get(key, "<absent>"), actual.get(key, "<absent>")
        if want != got:
            lines.append(f"{key}: expected {want!r}, store has {got!r}")
    return "; ".join(lines) or "no difference"


def non_utc_datetime(run: WorkflowRun) -> str | None:
    """The first datetime in ``run`` whose offset is not zero, described; ``None`` if all are UTC.

    Equality of aware datetimes ignores their offsets, so a document compare
    cannot see a store that hands back the right instant in UTC+1: this looks
    at ``utcoffset()`` of every datetime in the run, nested ones included.
    """
    return _non_utc(run, "run")


def _non_utc(value: Any, path: str) -> str | None:
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset != timedelta(0):
            return f"{path} = {value.isoformat()} (utcoffset {offset}, not UTC)"
        return None
    items: Any
    if isinstance(value, BaseModel):
        items = ((name, getattr(value, name)) for name in type(value).model_fields)
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        problem = _non_utc(item, f"{path}.{key}")
        if problem is not None:
            return problem
    return None


class BackendErrorEscaped(AssertionError):
    """A store operation raised something that is not a ``streamline_core.errors`` error."""


class GuardedStore:
    """Wraps a store and fails loudly when a backend exception escapes it.

    Every clause and the state machine talk to stores through this wrapper, so
    "nothing outside ``streamline_core.errors`` escapes" is checked on every
    call the suite makes. Results are type-checked too, so a store returning
    the wrong shape fails with a clear message rather than deep in a check,
    and every datetime of every returned run must be UTC (offset zero).
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def _escaped(self, op: str, exc: Exception) -> BackendErrorEscaped:
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return BackendErrorEscaped(
            f"store.{op}() let {kind} escape ({exc}); every backend error must be "
            "translated into a streamline_core.errors error"
        )

    @staticmethod
    def _run(op: str, value: object) -> WorkflowRun:
        if not isinstance(value, WorkflowRun):
            raise AssertionError(f"store.{op}() returned {value!r}, not a WorkflowRun")
        problem = non_utc_datetime(value)
        if problem is not None:
            raise AssertionError(
                f"store.{op}() returned {problem}: every datetime a store returns is aware UTC"
            )
        return value

    async def create(
        self, run: WorkflowRun, *, write_id: str | None = None
    ) -> tuple[WorkflowRun, bool]:
        """``Store.create``, guarded (``write_id`` is passed only when given)."""
        try:
            if write_id is None:
                result = await self.inner.create(run)
            else:
                result = await self.inner.create(run, write_id=write_id)
        except WorkflowError:
            raise
        except Exception as exc:
            raise self._escaped("create", exc) from exc
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], bool)):
            raise AssertionError(f"store.create() returned {result!r}, not (run, created)")
        return self._run("create", result[0]), result[1]

    async def get(self, run_id: str) -> WorkflowRun | None:
        """``Store.get``, guarded."""
        try:
            result = await self.inner.get(run_id)
        except WorkflowError:
            raise
        except Exception as exc:
            raise self._escaped("get", exc) from exc
        return None if result is None else self._run("get", result)

    async def claim(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: Collection[str],
        tenant_id: str | None = None,
    ) -> list[WorkflowRun]:
        """``Store.claim``, guarded."""
        try:
            result = await self.inner.claim(worker, now, lease_for, limit, workflows, tenant_id)
        except WorkflowError:
            raise
        except Exception as exc:
            raise self._escaped("claim", exc) from exc
        if not isinstance(result, list):
            raise AssertionError(f"store.claim() returned {result!r}, not a list")
        return [self._run("claim", r) for r in result]

    async def claim_limited(
        self,
        worker: str,
        now: datetime,
        lease_for: float,
        limit: int,
        workflows: Collection[str],
        tenant_id: str | None = None,
        run_id: str | None = None,
    ) -> list[WorkflowRun]:
        """``claim_limited`` (the flow-control operation), guarded."""
        try:
            result = await self.inner.claim_limited(  # type: ignore[attr-defined]
                worker, now, lease_for, limit, workflows, tenant_id, run_id
            )
        except WorkflowError:
            raise
        except Exception as exc:
            raise self._escaped("claim_limited", exc) from exc
        if not isinstance(result, list):
            raise AssertionError(f"store.claim_limited() returned {result!r}, not a list")
        return [self._run("claim_limited", r) for r in result]

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: str | None = None,
        *,
        write_id: str | None = None,
    ) -> WorkflowRun:
        """``Store.transition``, guarded (``write_id`` is passed only when given)."""
        try:
            if write_id is None:
                result = await self.inner.transition(run_id, expected_revision, patch, owner)
            else:
                result = await self.inner.transition(
                    run_id, expected_revision, patch, owner, write_id=write_id
                )
        except WorkflowError:
            raise
        except Exception as exc:
            raise self._escaped("transition", exc) from exc
        return self._run("transition", result)

    async def heartbeat(
        self, run_id: str, owner: str, now: datetime, lease_for: float
    ) -> RunStatus:
        """``Store.heartbeat``, guarded."""
        try:
            result = await self.inner.heartbeat(run_id, owner, now, lease_for)
        except WorkflowError:
            raise
        except Exception as exc:
            raise self._escaped("heartbeat", exc) from exc
        try:
            return RunStatus(result)
        except ValueError:
            raise AssertionError(
                f"store.heartbeat() returned {result!r}, not a RunStatus"
            ) from None

    async def find(self, query: RunQuery) -> RunPage:
        """``Store.find``, guarded."""
        try:
            result = await self.inner.find(query)
        except WorkflowError:
            raise
        except Exception as exc:
            raise self._escaped("find", exc) from exc
        if not isinstance(result, RunPage):
            raise AssertionError(f"store.find() returned {result!r}, not a RunPage")
        return result

    async def count(self, query: RunQuery) -> int:
        """``Store.count``, guarded."""
        try:
            result = await self.inner.count(query)
        except WorkflowError:
            raise
        except Exception as exc:
            raise self._escaped("count", exc) from exc
        if not isinstance(result, int) or isinstance(result, bool):
            raise AssertionError(f"store.count() returned {result!r}, not an int")
        return result

    async def delete(self, query: RunQuery) -> int:
        """``Store.delete``, guarded."""
        try:
            result = await self.inner.delete(query)
        except WorkflowError:
            raise
        except Exception as exc:
            raise self._escaped("delete", exc) from exc
        if not isinstance(result, int) or isinstance(result, bool):
            raise AssertionError(f"store.delete() returned {result!r}, not an int")
        return result

    async def close(self) -> None:
        """``Store.close``, guarded."""
        try:
            await self.inner.close()
        except WorkflowError:
            raise
        except Exception as exc:
            raise self._escaped("close", exc) from exc
