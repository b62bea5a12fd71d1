"""The runnable examples in docs/examples do what their docstrings say.

Each example's ``main`` runs here on an ``InMemoryStore`` and a ``FakeClock``
(so "three days" take no time), and the scripts also run as real processes,
exactly as documented (``python docs/examples/<name>.py``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest

from streamline_core import Engine, RunStatus, StepStatus, WorkflowRun, get_wait_resolution
from streamline_testing import FakeClock, InMemoryStore

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
NAMES = (
    "hello_world",
    "wait_and_resume",
    "sleep_timer",
    "parallel",
    "conditional",
    "newsletter",
    "ai_pipeline",
    "child_runs",
    "joins",
    "cancel_cascade",
    "durable_map",
    "checkpoints",
    "goto_loop",
    "saga",
)


def load(name: str) -> ModuleType:
    """Import ``docs/examples/<name>.py`` by path (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def fake_engine() -> tuple[Engine, FakeClock]:
    clock = FakeClock()
    return Engine(InMemoryStore(), clock=clock), clock


def statuses(run: WorkflowRun) -> dict[str, StepStatus]:
    return {s.step_id: s.status for s in run.steps}


async def test_hello_world() -> None:
    engine, _ = fake_engine()
    run = await load("hello_world").main(engine)
    assert run.status == RunStatus.DONE
    assert run.output == {"message": "HELLO, WORLD!", "signed_by": "Streamline"}
    assert run.outputs["greet"] == {"greeting": "Hello, World!"}
    assert run.context == {"name": "World", "shouted": True}


async def test_wait_and_resume(capsys: pytest.CaptureFixture[str]) -> None:
    engine, _ = fake_engine()
    run = await load("wait_and_resume").main(engine)
    assert run.status == RunStatus.DONE
    assert run.outputs["wait"] == {"approved": True, "by": "admin"}
    assert run.output == {"paid": True, "amount": 120, "approved_by": "admin"}
    out = capsys.readouterr().out
    assert "'Please approve this expense'" in out
    assert "second resume refused: INVALID_STATE (HTTP 400)" in out


async def test_sleep_timer_moves_the_fake_clock_instead_of_sleeping() -> None:
    engine, clock = fake_engine()
    start = clock.now()
    loop = asyncio.get_running_loop()
    began = loop.time()
    run = await load("sleep_timer").main(engine, clock)
    assert loop.time() - began < 1.5  # the 2 s sleep happened on the fake clock
    assert clock.now() - start == timedelta(seconds=2)
    assert run.status == RunStatus.DONE
    assert run.outputs == {"begin": {"ready": True}, "nap": None, "complete": {"done": True}}
    nap = run.step("nap")
    assert nap is not None and nap.ended_at == start + timedelta(seconds=2)


async def test_parallel_modes() -> None:
    engine, _ = fake_engine()
    run = await load("parallel").main(engine)
    assert run.status == RunStatus.DONE
    fetched = run.outputs["fetch_all"]
    assert [r["source"] for r in fetched["results"]] == ["users", "orders", "stock"]
    assert fetched["seconds"] < 0.4  # concurrent: about the slowest call (0.2 s), not the sum
    assert run.outputs["first_answer"] == {"error": "eu mirror is down"}
    assert run.outputs["first_success"] == {"winner": {"source": "us", "mirror": "us"}}
    outcomes = run.outputs["best_effort"]["outcomes"]
    assert [o["status"] for o in outcomes] == ["rejected", "fulfilled", "fulfilled"]
    assert "eu mirror is down" in outcomes[0]["error"]


async def test_child_runs_retry_a_failed_payment_with_a_new_child() -> None:
    engine, _ = fake_engine()
    run, children = await load("child_runs").main(engine)
    assert run.status == RunStatus.DONE
    assert run.output["payment"]["charged"] == 42
    # Same fake instant for both: ordered by status, not creation time.
    failed, done = sorted(children, key=lambda c: c.status != RunStatus.FAILED)
    assert (failed.status, done.status) == (RunStatus.FAILED, RunStatus.DONE)
    assert failed.id != done.id
    assert all(c.parent_run_id == run.id and c.parent_step_id == "pay" for c in children)
    assert run.output["payment"]["payment_run"] == done.id
    assert run.steps[0].attempts == 2


async def test_joins_in_every_mode() -> None:
    engine, _ = fake_engine()
    runs = await load("joins").main(engine)
    assert [o["size"] for o in runs["all"].output] == [1024, 64, 256]
    settled = runs["all_settled"].output
    assert [e["status"] for e in settled] == ["done", "failed"]
    assert settled[1]["error"]["message"] == "cannot resize to 0 px"
    assert runs["any"].output["size"] == 64
    race = runs["race"]
    assert race.status == RunStatus.FAILED
    assert race.error is not None and race.error.details["step_error_code"] == "CHILD_FAILED"
    assert runs["start_child + join"].output == [
        {"size": 128, "url": "https://img.example/128.png"}
    ]


async def test_cancel_cascades_to_children_but_not_a_detached_one() -> None:
    engine, _ = fake_engine()
    tree = await load("cancel_cascade").main(engine)
    by_workflow: dict[str, list[RunStatus]] = {}
    for _, run in tree:
        by_workflow.setdefault(run.workflow_id, []).append(run.status)
    assert by_workflow == {
        "import": [RunStatus.CANCELLED],
        "audit": [RunStatus.WAITING],
        "file": [RunStatus.CANCELLED] * 2,
        "scan": [RunStatus.CANCELLED] * 2,
    }


async def test_conditional_skips_and_branches() -> None:
    engine, _ = fake_engine()
    runs = await load("conditional").main(engine)
    basic, premium = runs["basic"], runs["premium"]
    assert basic.status == premium.status == RunStatus.DONE
    assert statuses(basic)["premium_feature"] == StepStatus.SKIPPED
    assert statuses(premium)["premium_feature"] == StepStatus.DONE
    assert basic.output == {"tier": "basic", "gift": None, "shipping": "standard"}
    assert premium.output == {"tier": "premium", "gift": "tote bag", "shipping": "express"}


async def test_newsletter_over_days_of_fake_time() -> None:
    newsletter = load("newsletter")
    engine, clock = fake_engine()
    start = clock.now()
    outbox = newsletter.Outbox()
    runs = await newsletter.main(
        engine,
        clock,
        outbox=outbox,
        first_issue_after=timedelta(days=3),
        open_timeout=timedelta(days=7),
    )
    alice, bob = runs["alice"], runs["bob"]
    assert alice.status == bob.status == RunStatus.DONE
    assert clock.now() - start == timedelta(days=10)

    assert alice.outputs["await_open"] == {"by": "alice"}
    assert alice.output == {
        "engaged": True,
        "opened": {"by": "alice"},
        "sent": "Thanks for reading: Issue #2",
    }
    timed_out = get_wait_resolution(bob.outputs["await_open"])
    assert timed_out is not None and timed_out.kind == "timeout"
    assert timed_out.event == "email.opened"
    assert bob.output == {"engaged": False, "sent": "We miss you"}
    assert bob.steps[-1].ended_at == start + timedelta(days=10)

    assert outbox.to("alice@example.com") == [
        "Welcome, Alice!",
        "Issue #1: durable workflows",
        "Thanks for reading: Issue #2",
    ]
    assert outbox.to("bob@example.com") == [
        "Welcome, Bob!",
        "Issue #1: durable workflows",
        "We miss you",
    ]
    # ctx.idempotency_key() gave every email its own, stable message id.
    assert alice.outputs["send_welcome"]["message_id"] == f"{alice.id}:send_welcome"
    assert len({email.message_id for email in outbox.sent}) == 6


async def test_ai_pipeline_retries_the_model_and_publishes_after_review() -> None:
    pipeline = load("ai_pipeline")
    engine, clock = fake_engine()
    model = pipeline.FakeModel(failures=1)
    reviewers = pipeline.ReviewChannel()
    run = await pipeline.main(engine, clock, model=model, reviewers=reviewers)
    assert run.status == RunStatus.DONE
    analyze = run.step("analyze")
    assert analyze is not None
    assert analyze.attempts == 2
    assert analyze.error is None
    assert run.outputs["analyze"]["keywords"] == ["durable", "workflows", "python"]
    assert len(reviewers.requests) == 1
    token = reviewers.requests[0]["link"].rsplit("/", 1)[-1]
    assert token not in run.model_dump_json()  # the run stores only the token's hash
    assert run.outputs["review"] == {"approved": True, "editor": "dana", "notes": ""}
    assert run.output["published"] is True
    assert run.output["article"]["sentiment"] == "positive"


async def test_ai_pipeline_rejected_by_the_editor() -> None:
    pipeline = load("ai_pipeline")
    engine, clock = fake_engine()
    run = await pipeline.main(engine, clock, model=pipeline.FakeModel(failures=0), approve=False)
    assert run.status == RunStatus.DONE
    assert run.step("analyze").attempts == 1
    assert run.output == {"published": False, "editor": "dana", "notes": "too short"}


async def test_durable_map_fetches_no_finished_page_twice() -> None:
    engine, clock = fake_engine()
    run = await load("durable_map").main(engine, clock)
    assert run.status == RunStatus.DONE
    assert run.output == {"pages": 8, "words": 2080}
    fetch_all = run.step("fetch_all")
    assert fetch_all is not None and fetch_all.attempts == 2
    assert fetch_all.checkpoint is None  # cleared once the step completed


async def test_checkpoints_resume_the_crawl_where_it_failed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine, clock = fake_engine()
    run = await load("checkpoints").main(engine, clock)
    assert run.status == RunStatus.DONE
    assert run.output == {"pages": 10}
    out = capsys.readouterr().out
    assert "attempt 2 starts at page 6" in out
    assert "pages crawled: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in out


async def test_goto_loops_back_and_jumps_forward() -> None:
    engine, _ = fake_engine()
    runs = await load("goto_loop").main(engine)
    full, short = runs["full"], runs["short"]
    assert full.status == short.status == RunStatus.DONE
    assert full.context == {"polls": 3} and full.gotos == 2
    assert full.output == {"published": True, "report": "report after 3 polls"}
    assert statuses(short)["report"] == StepStatus.SKIPPED
    assert short.output == {"published": True, "report": None}


async def test_saga_refunds_then_releases(capsys: pytest.CaptureFixture[str]) -> None:
    engine, _ = fake_engine()
    run = await load("saga").main(engine)
    assert run.status == RunStatus.FAILED
    assert run.compensation == "done"
    assert [s.compensation for s in run.steps] == ["done", "done", None]
    out = capsys.readouterr().out
    assert out.index("refund P-42") < out.index("release R-17")


def test_hello_world_runs_as_documented() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "hello_world.py")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "run done: HELLO, WORLD!" in result.stdout
    assert result.stderr == ""


async def test_every_example_runs_as_a_script() -> None:
    """All scripts at once, on the system clock: each exits 0 and prints a finished run."""

    async def run_script(name: str) -> tuple[str, int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / f"{name}.py"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode is not None
        return name, proc.returncode, out.decode(), err.decode()

    results = await asyncio.gather(*(run_script(name) for name in NAMES))
    for name, code, out, err in results:
        assert code == 0, f"{name}: {err}"
        assert err == "", f"{name}: {err}"
        assert "done" in out, f"{name}: {out}"


def test_the_toy_store_runs_as_a_script_and_is_in_the_table() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "toy_store.py")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "run done on the toy store: 'hello, world'" in result.stdout
    assert result.stderr == ""
    table = (EXAMPLES / "README.md").read_text()
    for path in sorted(EXAMPLES.glob("*.py")):
        assert f"[`{path.name}`]({path.name})" in table, path.name
