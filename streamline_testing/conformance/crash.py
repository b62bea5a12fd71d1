"""``CrashRecovery``: the engine on a backend survives a worker dying at any store call.

Random workflow shapes (steps that succeed, fail a few times, sleep, wait for
a person, wait for an event) run on an engine ("A") whose store is wrapped in
a fault injector. At its n-th store call A dies, in one of two ways:

``before``
    the call never reaches the store (the process died just before it);
``lost_ack``
    the call is applied, then A dies before seeing the answer (the write
    landed; the acknowledgement was lost).

Dying means every task of A stops at once and A never writes again, exactly
as a killed process. After the lease expires a fresh engine ("B") on the same
store carries every run to its end. Properties checked on each example:

* every run ends ``done`` with the outputs the model predicts;
* every step's output is committed exactly once;
* a step executes again only if A was executing it (or committing it) when
  it died — beyond the attempts its failures call for;
* the executions of one run never overlap in time across workers.

Mix it into a harness like the other parts of the suite::

    class TestMyStoreCrashes(MyHarness, CrashRecovery): ...

It drives its own event loop (plain pytest, no asyncio plugin) and uses the
loaded hypothesis profile.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hypothesis import given
from hypothesis import strategies as st

from streamline_core import Engine, RunStatus, StepConfig, StepContext, WorkflowRun
from streamline_core.store import Store
from streamline_testing.conformance.harness import StoreHarness
from streamline_testing.fake_clock import FakeClock

__all__ = ["CrashRecovery", "CrashPlan", "StepKind"]

StepKind = Literal["ok", "fail1", "fail2", "sleep", "wait", "event"]
LEASE = 10.0
RESUME_PAYLOAD = {"by": "conformance"}


@dataclass(frozen=True)
class CrashPlan:
    """Where and how worker A dies.

    Attributes:
        at_call: A dies at its n-th store call (1-based); beyond its last call, never.
        mode: ``before`` (the call is not applied) or ``lost_ack`` (applied, answer lost).
    """

    at_call: int
    mode: Literal["before", "lost_ack"]


_SHAPES = st.lists(
    st.lists(
        st.sampled_from(("ok", "fail1", "fail2", "sleep", "wait", "event")), min_size=1, max_size=4
    ),
    min_size=1,
    max_size=3,
)
_PLANS = st.builds(
    CrashPlan,
    at_call=st.integers(min_value=1, max_value=40),
    mode=st.sampled_from(("before", "lost_ack")),
)


class _Killed(Exception):
    """Internal marker: the simulated process died."""


@dataclass
class _Trace:
    """What the handlers and the stores saw, in one global order."""

    seq: itertools.count[int] = field(default_factory=itertools.count)
    starts: list[tuple[int, str, str, str]] = field(default_factory=list)  # seq, run, step, worker
    ends: dict[int, int] = field(default_factory=dict)  # start seq -> end seq
    commits: Counter[tuple[str, str]] = field(default_factory=Counter)
    a_started: dict[tuple[str, str], int] = field(default_factory=dict)  # last start by A
    a_touched: dict[tuple[str, str], int] = field(default_factory=dict)  # last step write by A
    died_at: int | None = None
    in_progress_at_death: set[tuple[str, str]] = field(default_factory=set)


class _Recording:
    """Below the fault injector: records the step writes that reached the store."""

    def __init__(self, inner: Store, trace: _Trace) -> None:
        self.inner = inner
        self.trace = trace

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: Any = None,
        **options: Any,
    ) -> WorkflowRun:
        # Shielded: a write already on its way lands (and is recorded) even when
        # the worker that sent it dies while waiting for the answer.
        return await asyncio.shield(
            asyncio.ensure_future(
                self._transition(run_id, expected_revision, patch, owner, options)
            )
        )

    async def _transition(
        self,
        run_id: str,
        expected_revision: int,
        patch: Mapping[str, Any],
        owner: Any,
        options: dict[str, Any],
    ) -> WorkflowRun:
        run = await self.inner.transition(run_id, expected_revision, patch, owner, **options)
        seq = next(self.trace.seq)
        for path, value in patch.items():
            parts = path.split(".")
            if len(parts) != 2 or parts[0] != "steps" or not isinstance(value, dict):
                continue
            key = (run_id, str(value["step_id"]))
            if owner == "A":
                self.trace.a_touched[key] = seq
            if str(value["status"]) in ("done", "skipped"):
                self.trace.commits[key] += 1
        return run


class _FaultyStore:
    """Worker A's view of the store: dies at the planned call."""

    def __init__(self, inner: _Recording, plan: CrashPlan, trace: _Trace) -> None:
        self.inner = inner
        self.plan = plan
        self.trace = trace
        self.calls = 0
        self.dead = False
        self.engine: Engine | None = None

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name == "close":
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.dead:
                raise asyncio.CancelledError()
            self.calls += 1
            if self.calls == self.plan.at_call:
                if self.plan.mode == "lost_ack":
                    await attr(*args, **kwargs)
                self._die()
                raise asyncio.CancelledError()
            return await attr(*args, **kwargs)

        return call

    def _die(self) -> None:
        self.dead = True
        trace = self.trace
        trace.died_at = next(trace.seq)
        # A step A had started and not yet written an outcome for (done,
        # suspended, retry) was interrupted: it may run once more.
        trace.in_progress_at_death = {
            key
            for key, started in trace.a_started.items()
            if trace.a_touched.get(key, -1) < started
        }
        engine = self.engine
        assert engine is not None
        engine._abandon()


def _model_output(kind: str, step_id: str) -> Any:
    if kind == "sleep":
        return None
    if kind == "wait":
        return RESUME_PAYLOAD
    if kind == "event":
        return {"event": step_id}
    return step_id


def _expected_executions(kind: str) -> int:
    return {"fail1": 2, "fail2": 3}.get(kind, 1)


def _steps(shape: list[str], trace: _Trace, worker: str) -> dict[str, Any]:
    # Each engine registers its own handlers, so a handler knows which worker runs it.
    steps: dict[str, Any] = {}
    for i, kind in enumerate(shape):
        step_id = f"s{i}-{kind}"

        async def handler(ctx: StepContext, kind: str = kind) -> Any:
            start = next(trace.seq)
            trace.starts.append((start, ctx.run_id, ctx.step_id, worker))
            if worker == "A":
                trace.a_started[(ctx.run_id, ctx.step_id)] = start
            try:
                if (kind == "fail1" and ctx.attempt < 2) or (kind == "fail2" and ctx.attempt < 3):
                    raise RuntimeError(f"planned failure {ctx.attempt}")
                if kind == "sleep":
                    await ctx.sleep(5)
                if kind == "wait":
                    await ctx.wait("conformance")
                if kind == "event":
                    await ctx.wait_for(f"go-{ctx.step_id}")
                return ctx.step_id
            finally:
                trace.ends[start] = next(trace.seq)

        steps[step_id] = StepConfig(handler, retries=3, retry_delay=1, retry_backoff="fixed")
    return steps


def _make_test() -> Callable[[Any], None]:
    @given(shapes=_SHAPES, plan=_PLANS)
    def test_crash_recovery(self: Any, shapes: list[list[str]], plan: CrashPlan) -> None:
        """crash: a worker dying at any store call loses nothing and commits each step once."""
        assert isinstance(self, StoreHarness), "mix a StoreHarness subclass into CrashRecovery"
        asyncio.run(_scenario(self, shapes, plan))

    return test_crash_recovery


class CrashRecovery:
    """The crash property; mix a :class:`StoreHarness` subclass into it."""

    test_crash_recovery = _make_test()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Hypothesis wants one test function per class it runs on.
        super().__init_subclass__(**kwargs)
        if "test_crash_recovery" not in cls.__dict__:
            cls.test_crash_recovery = _make_test()


async def _scenario(harness: StoreHarness, shapes: list[list[str]], plan: CrashPlan) -> None:
    store = await harness.make_store()
    trace = _Trace()
    recording = _Recording(store, trace)
    clock = FakeClock()
    engines: list[Engine] = []

    def engine(store: Any, worker: str) -> Engine:
        e = Engine(
            store, clock=clock, worker_id=worker, lease=LEASE, load_entry_point_plugins=False
        )
        for i, shape in enumerate(shapes):
            e.workflow(f"shape-{i}", steps=_steps(shape, trace, worker))
        engines.append(e)
        return e

    try:
        client = engine(recording, "client")
        faulty = _FaultyStore(recording, plan, trace)
        a = engine(faulty, "A")
        faulty.engine = a
        runs = [await client.get_workflow(f"shape-{i}").start({"n": i}) for i in range(len(shapes))]
        await a.start()
        b: Engine | None = None
        for _ in range(300):
            await clock.advance(1)
            if faulty.dead and b is None:
                await clock.advance(LEASE + 1)
                b = engine(recording, "B")
                await b.start()
            current = [await client.runs.get(r.id) for r in runs]
            if all(r is not None and r.is_terminal for r in current):
                break
            for r in current:
                if r is None or r.status != RunStatus.WAITING or r.wait is None:
                    continue
                if r.wait.kind == "human":
                    await client.runs.resume(r.id, RESUME_PAYLOAD)
                elif r.wait.kind == "event" and r.wait.event:
                    step_id = r.wait.event.removeprefix("go-")
                    await client.emit_event(r.wait.event, {"event": step_id}, run_id=r.id)
        await clock.settle()
        _check(shapes, [await client.runs.get(r.id) for r in runs], trace, plan, faulty.dead)
    finally:
        for e in engines:
            if e.worker_id != "A":
                await e.shutdown(timeout=0.5)
        await harness.dispose(store)


def _check(
    shapes: list[list[str]],
    runs: list[WorkflowRun | None],
    trace: _Trace,
    plan: CrashPlan,
    died: bool,
) -> None:
    where = f"(crash plan {plan}, died={died})"
    executions: Counter[tuple[str, str]] = Counter((r, s) for _, r, s, _ in trace.starts)
    for shape, run in zip(shapes, runs, strict=True):
        assert run is not None, f"a run disappeared {where}"
        assert run.status == RunStatus.DONE, (
            f"run {run.id} ended {run.status.value} ({run.error}) instead of done {where}"
        )
        for kind, step in zip(shape, run.steps, strict=True):
            key = (run.id, step.step_id)
            assert step.output == _model_output(kind, step.step_id), (
                f"step {step.step_id} of {run.id} committed {step.output!r} {where}"
            )
            assert trace.commits[key] == 1, (
                f"step {step.step_id} of {run.id} was committed {trace.commits[key]} times {where}"
            )
            extra = executions[key] - _expected_executions(kind)
            allowed = 1 if key in trace.in_progress_at_death else 0
            assert 0 <= extra <= allowed, (
                f"step {step.step_id} of {run.id} executed {executions[key]} times "
                f"(expected {_expected_executions(kind)}, +{allowed} for a crash) {where}"
            )
    # Executions of one run never overlap across workers.
    by_run: dict[str, list[tuple[int, int, str]]] = {}
    for start, run_id, _, worker in trace.starts:
        end = trace.ends.get(start, trace.died_at if worker == "A" else None)
        assert end is not None, f"an execution by {worker} never ended {where}"
        by_run.setdefault(run_id, []).append((start, end, worker))
    for spans in by_run.values():
        spans.sort()
        for (_, end_a, wa), (start_b, _, wb) in itertools.pairwise(spans):
            assert end_a <= start_b, f"{wa} and {wb} executed one run at once {where}"
