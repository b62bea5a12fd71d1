"""The child-run half of ``StepContext``: run_child, run_children, start_child, join.

Contracts layer: imports the model, errors and the pure join and id modules.
:class:`ChildSteps` is a mixin of ``StepContext``; what it needs of the
engine (resolving a workflow, creating children, checking them) it gets as
:class:`ChildOps` from the step's services. Every argument is checked before
anything is written: a bad workflow name, a non-JSON input or a foreign id
raises a coded error and starts no child.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn, Protocol

from streamline_core._child_ids import child_run_id
from streamline_core._joins import MODES, ONE
from streamline_core.errors import SuspendSignal, ValidationError
from streamline_core.run import WaitState, WorkflowRun

__all__ = ["ChildOps", "ChildSteps"]


class ChildOps(Protocol):
    """What child steps use of the engine (the runtime's ``Children`` part)."""

    def prepare(self, workflow: Any, input_value: Any) -> Any:
        """Resolve ``workflow`` (a ``Workflow`` or a registered name) and check ``input_value``.

        Raises:
            WorkflowNotFoundError: no such workflow is registered.
            ValidationError: the input is not valid for it.
        """
        ...

    async def start(
        self,
        parent: WorkflowRun,
        step_id: str,
        children: Sequence[tuple[str, Any]],
        *,
        detached: bool,
    ) -> None:
        """Create each ``(child id, prepared)`` child of ``parent`` (an existing id is kept)."""
        ...

    async def check_children(self, parent: WorkflowRun, ids: Sequence[str]) -> None:
        """Raise ``ValidationError`` unless every id is a child run of ``parent``."""
        ...

    def join_wait(
        self,
        parent: WorkflowRun,
        ids: Sequence[str],
        mode: str,
        deadline: datetime | None,
        *,
        owned: bool,
    ) -> WaitState:
        """The wait that suspends ``parent``'s step until the join is decided."""
        ...


def _mode(mode: Any, run_id: str) -> str:
    if mode not in MODES:
        raise ValidationError(
            f"join mode must be one of {', '.join(MODES)}, got {mode!r}", run_id=run_id
        )
    return str(mode)


class ChildSteps:
    """Child runs from a step. Mixed into ``StepContext``."""

    _run: WorkflowRun
    _step_id: str
    _attempt: int
    _child_position: int = 0

    def _child_ops(self) -> ChildOps:  # pragma: no cover - StepContext overrides
        raise NotImplementedError

    def _until(self, timeout: float | timedelta | None, what: str) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _next_slot(self, key: str | None) -> tuple[str, str | int]:
        if key is not None:
            if not isinstance(key, str) or not key:
                raise ValidationError("a child key must be a non-empty string", run_id=self._run.id)
            return ("key", key)
        self._child_position += 1
        return ("pos", self._child_position)

    def _child_id(self, slot: tuple[str, str | int]) -> str:
        run = self._run
        return child_run_id(run.id, self._step_id, self._attempt, slot, run.epoch, run.gotos)

    async def start_child(
        self, workflow: Any, input: Any = None, *, key: str | None = None, detached: bool = False
    ) -> str:
        """Start a child run of ``workflow`` and return its id at once (join it later).

        The id is derived from this run, step, attempt and ``key`` (or the
        child's position among this attempt's children), so a step
        re-executed after a crash finds the child it already started.

        Args:
            workflow: A ``Workflow`` or the name of a registered one.
            input: The child's input.
            key: Names the child within this step attempt (instead of its position).
            detached: The child outlives this run: a cancel does not cascade to it.

        Raises:
            WorkflowNotFoundError: ``workflow`` is not registered.
            ValidationError: the input is invalid, or ``key`` is not a non-empty string.
        """
        ops = self._child_ops()
        prepared = ops.prepare(workflow, input)
        child_id = self._child_id(self._next_slot(key))
        await ops.start(self._run, self._step_id, [(child_id, prepared)], detached=bool(detached))
        return child_id

    async def run_child(
        self, workflow: Any, input: Any = None, *, timeout: float | timedelta | None = None
    ) -> NoReturn:
        """Start a child run and suspend this step until it ends.

        The step's output is the child's output; a failed or cancelled child
        fails the step with ``ChildWorkflowError`` (retried with a new child).

        Raises:
            WorkflowNotFoundError: ``workflow`` is not registered.
            ValidationError: the input is invalid.
        """
        await self._join_new([(workflow, input)], ONE, timeout)

    async def run_children(
        self,
        children: Sequence[tuple[Any, Any]],
        *,
        mode: str = "all",
        timeout: float | timedelta | None = None,
    ) -> NoReturn:
        """Start a child run per ``(workflow, input)`` and suspend until the join is decided.

        Outputs: ``all`` the list of outputs in input order; ``all_settled`` a
        list of ``{"status", "output", "error"}``; ``any`` the first done
        child's output; ``race`` the first ended child's (a failed first
        finisher fails the step). Children a decided join no longer needs are
        cancelled.

        Raises:
            WorkflowNotFoundError: a workflow is not registered.
            ValidationError: an input is invalid, the list is empty or the mode unknown.
        """
        mode = _mode(mode, self._run.id)
        if isinstance(children, str | bytes) or not isinstance(children, Sequence):
            raise ValidationError(
                "run_children takes a list of (workflow, input) pairs", run_id=self._run.id
            )
        pairs = list(children)
        if not pairs:
            raise ValidationError("run_children needs at least one child", run_id=self._run.id)
        for pair in pairs:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValidationError(
                    f"run_children takes (workflow, input) pairs, got {pair!r}",
                    run_id=self._run.id,
                )
        await self._join_new([(wf, value) for wf, value in pairs], mode, timeout)

    async def join(
        self,
        ids: Sequence[str],
        *,
        mode: str = "all",
        timeout: float | timedelta | None = None,
    ) -> NoReturn:
        """Suspend this step until children started earlier (``start_child``) decide the join.

        Outputs and failures as for :meth:`run_children`.

        Raises:
            ValidationError: an id is not a child of this run, the list is
                empty or has duplicates, or the mode is unknown.
        """
        mode = _mode(mode, self._run.id)
        if isinstance(ids, str) or not isinstance(ids, Sequence) or not ids:
            raise ValidationError(
                "join takes a non-empty list of child run ids", run_id=self._run.id
            )
        wanted = list(ids)
        if not all(isinstance(i, str) for i in wanted) or len(set(wanted)) != len(wanted):
            raise ValidationError(
                "join takes distinct child run ids (strings)", run_id=self._run.id
            )
        deadline = self._until(timeout, "join timeout")
        ops = self._child_ops()
        await ops.check_children(self._run, wanted)
        raise SuspendSignal(ops.join_wait(self._run, wanted, mode, deadline, owned=False))

    async def _join_new(
        self, pairs: list[tuple[Any, Any]], mode: str, timeout: float | timedelta | None
    ) -> NoReturn:
        deadline = self._until(timeout, "join timeout")
        ops = self._child_ops()
        prepared = [ops.prepare(wf, value) for wf, value in pairs]  # all checked before any write
        ids = [self._child_id(self._next_slot(None)) for _ in prepared]
        await ops.start(
            self._run, self._step_id, list(zip(ids, prepared, strict=True)), detached=False
        )
        raise SuspendSignal(ops.join_wait(self._run, ids, mode, deadline, owned=True))
