"""Joins on child runs: the wait a joining step stores, and what the children's states decide.

Contracts layer: imports the run model and errors only. Pure functions of
values, so the runtime can decide on a fresh read of the children whenever
the parent is claimed, however many notifications were lost on the way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from streamline_core.errors import ErrorCode
from streamline_core.run import RunStatus, WaitState, WorkflowRun

__all__ = ["MODES", "ONE", "Join", "Decision", "join_wait", "decide"]

MODES = ("all", "all_settled", "any", "race")
"""The join modes of ``run_children`` and ``join``."""

ONE = "one"
"""The internal mode of ``run_child``: ``all`` over one child, its output unwrapped."""

_LATEST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Join:
    """A join as stored in a ``children`` wait's ``data``.

    Attributes:
        ids: The joined child run ids, in input order.
        mode: ``all``, ``all_settled``, ``any``, ``race`` or ``one``.
        deadline: When the join times out (``None``: never).
        owned: The children were started by this join (``run_child``/``run_children``),
            so a timeout cancels them; ``join`` of earlier children leaves them be.
    """

    ids: tuple[str, ...]
    mode: str
    deadline: datetime | None
    owned: bool

    @classmethod
    def of(cls, wait: WaitState) -> Join:
        """The join a ``children`` wait holds."""
        data = wait.data if isinstance(wait.data, dict) else {}
        deadline = data.get("deadline")
        return cls(
            ids=tuple(data.get("children") or ()),
            mode=str(data.get("mode") or "all"),
            deadline=datetime.fromisoformat(deadline) if isinstance(deadline, str) else None,
            owned=bool(data.get("owned")),
        )


def join_wait(
    ids: Sequence[str], mode: str, *, deadline: datetime | None, owned: bool, recheck_at: datetime
) -> WaitState:
    """The wait of a step joining ``ids``: due at the next re-check (or the deadline, if sooner)."""
    until = recheck_at if deadline is None else min(deadline, recheck_at)
    return WaitState(
        kind="children",
        reason=f"joining {len(ids)} child run(s), mode {mode!r}",
        data={
            "children": list(ids),
            "mode": mode,
            "deadline": None if deadline is None else deadline.isoformat(),
            "owned": owned,
        },
        until=until,
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """What the children's states decide for the joining step.

    Attributes:
        kind: ``wait`` (not yet), ``done`` (the step completes with ``output``)
            or ``failed`` (the step fails with ``ChildWorkflowError`` for ``child_id``).
        output: The step's output when ``done``.
        child_id: The child that failed the join.
        child_status: That child's status (``failed``, ``cancelled``, or ``missing``).
        child_error: That child's ``{"code", "message"}``.
        losers: Active, non-detached joined children to cancel now the join is over.
    """

    kind: Literal["wait", "done", "failed"]
    output: Any = None
    child_id: str | None = None
    child_status: str | None = None
    child_error: dict[str, Any] | None = None
    losers: tuple[str, ...] = field(default=())


def _error(run: WorkflowRun | None, child_id: str) -> dict[str, Any] | None:
    if run is None:
        return {
            "code": ErrorCode.WORKFLOW_NOT_FOUND.value,
            "message": f"child run {child_id!r} no longer exists",
        }
    if run.error is None:
        return None
    return {"code": run.error.code, "message": run.error.message}


def _status(run: WorkflowRun | None) -> str:
    return "missing" if run is None else run.status.value


def decide(join: Join, children: Mapping[str, WorkflowRun]) -> Decision:
    """Decide the join on the children as read (a missing child counts as failed).

    "First" means the earliest ``ended_at``, ties broken by input order.
    """
    ended: list[tuple[datetime, int, str]] = []
    for pos, cid in enumerate(join.ids):
        run = children.get(cid)
        if run is None or run.is_terminal:
            at = run.ended_at if run is not None and run.ended_at is not None else _LATEST
            ended.append((at, pos, cid))
    ended.sort()

    def done(cid: str) -> bool:
        run = children.get(cid)
        return run is not None and run.status == RunStatus.DONE

    def losers() -> tuple[str, ...]:
        return tuple(
            cid
            for cid in join.ids
            if (run := children.get(cid)) is not None and not run.is_terminal and not run.detached
        )

    def failed(cid: str) -> Decision:
        run = children.get(cid)
        return Decision(
            "failed",
            child_id=cid,
            child_status=_status(run),
            child_error=_error(run, cid),
            losers=losers(),
        )

    mode = join.mode
    if mode in ("all", ONE):
        for _, _, cid in ended:
            if not done(cid):
                return failed(cid)
        if len(ended) < len(join.ids):
            return Decision("wait")
        outputs = [children[cid].output for cid in join.ids]
        return Decision("done", output=outputs[0] if mode == ONE else outputs)
    if mode == "all_settled":
        if len(ended) < len(join.ids):
            return Decision("wait")
        entries = []
        for cid in join.ids:
            run = children.get(cid)
            entries.append(
                {
                    "status": "cancelled" if run is None else run.status.value,
                    "output": None if run is None else run.output,
                    "error": None if done(cid) else _error(run, cid),
                }
            )
        return Decision("done", output=entries)
    if mode == "any":
        for _, _, cid in ended:
            if done(cid):
                return Decision("done", output=children[cid].output, losers=losers())
        if len(ended) < len(join.ids):
            return Decision("wait")
        return failed(ended[0][2])
    # race: the first child to end decides
    if not ended:
        return Decision("wait")
    first = ended[0][2]
    if done(first):
        return Decision("done", output=children[first].output, losers=losers())
    return failed(first)
