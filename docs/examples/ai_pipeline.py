"""AI Pipeline: parallel model calls with retries, then a human review through a webhook.

One run per document:

1. ``fetch_document`` — load the document;
2. ``analyze`` — three model calls at once with ``execute_parallel`` (summary,
   keywords, sentiment). The model is flaky, so the step is a ``StepConfig``
   with ``retries`` and ``retry_delay``: a failed attempt is retried durably
   (the run waits with ``wait.kind == "retry"`` until the attempt is due);
3. ``review`` — ``create_hook`` makes an unguessable token, the step sends its
   link to an editor (a fake chat channel) and suspends with
   ``ctx.wait(..., hook=hook)``; the editor's click calls ``resume_hook(token,
   payload)``, whose payload becomes the step's output;
4. ``publish`` — publish if the editor approved.

Also shows ``StepDefaults`` (no retries unless a step asks for them) and
``engine.on`` handlers that report retries.

Run it:

    python docs/examples/ai_pipeline.py
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from streamline_core import (
    Engine,
    Event,
    StepConfig,
    StepContext,
    StepDefaults,
    Workflow,
    WorkflowRun,
    create_hook,
    execute_parallel,
    resume_hook,
)
from streamline_testing import FakeClock

DOCUMENTS = {
    "https://example.com/posts/durable-workflows": {
        "title": "Durable workflows in plain Python",
        "text": "Steps are checkpointed in the database, so a crash loses nothing...",
    }
}


class FakeModel:
    """Stands in for an LLM client. The first ``failures`` calls fail like an overloaded API."""

    def __init__(self, failures: int = 1) -> None:
        self.failures = failures
        self.calls = 0

    async def complete(self, task: str, text: str) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("model overloaded (HTTP 503)")
        await asyncio.sleep(0.05)  # network and inference time
        answers: dict[str, Any] = {
            "summary": f"{text[:30]}...",
            "keywords": ["durable", "workflows", "python"],
            "sentiment": "positive",
        }
        return answers[task]


@dataclass
class ReviewChannel:
    """A fake chat channel where editors get review requests (a link and the draft)."""

    requests: list[dict[str, Any]] = field(default_factory=list)

    async def request_review(self, link: str, draft: dict[str, Any]) -> None:
        self.requests.append({"link": link, "draft": draft})


class AIPipeline:
    """The workflow's steps, with the model client and the review channel they use."""

    def __init__(self, model: FakeModel, reviewers: ReviewChannel) -> None:
        self.model = model
        self.reviewers = reviewers
        self.published: list[dict[str, Any]] = []

    async def fetch_document(self, ctx: StepContext) -> dict[str, str]:
        return DOCUMENTS[ctx.input["url"]]

    async def analyze(self, ctx: StepContext) -> dict[str, Any]:
        text = ctx.get_output("fetch_document")["text"]
        ctx.log("analyzing", attempt=ctx.attempt)
        summary, keywords, sentiment = await execute_parallel(
            [
                lambda: self.model.complete("summary", text),
                lambda: self.model.complete("keywords", text),
                lambda: self.model.complete("sentiment", text),
            ],
            mode="all",  # the first failure cancels the others and fails this attempt
        )
        return {"summary": summary, "keywords": keywords, "sentiment": sentiment}

    async def review(self, ctx: StepContext) -> None:
        hook = create_hook(ctx, "editorial-review")
        draft = {"title": ctx.get_output("fetch_document")["title"], **ctx.get_output("analyze")}
        # Only the link carries the token; the run stores nothing but its hash.
        await self.reviewers.request_review(f"https://cms.example.com{hook.path}", draft)
        await ctx.wait("Editorial review", {"draft": draft}, hook=hook)

    async def publish(self, ctx: StepContext) -> dict[str, Any]:
        decision = ctx.get_output("review")
        if not decision["approved"]:
            return {"published": False, "editor": decision["editor"], "notes": decision["notes"]}
        article = {"url": ctx.input["url"], **ctx.get_output("analyze")}
        self.published.append(article)
        return {"published": True, "editor": decision["editor"], "article": article}

    def register(self, engine: Engine) -> Workflow:
        return engine.workflow(
            "ai-pipeline",
            steps={
                "fetch_document": self.fetch_document,
                "analyze": StepConfig(
                    self.analyze, retries=3, retry_delay=0.2, retry_backoff="exponential"
                ),
                "review": self.review,
                "publish": self.publish,
            },
            defaults=StepDefaults(retries=1, timeout=60),  # one attempt unless a step says more
        )


async def wait_for_review_request(
    workflow: Workflow, run_id: str, clock: FakeClock | None
) -> WorkflowRun:
    """Poll the run until it waits for a person (``ctx.wait``).

    A retry backoff is a wait too (``wait.kind == "retry"``), so keep polling
    through it; in tests, move the fake clock meanwhile instead of waiting.
    """
    while True:
        run = await workflow.get(run_id)
        if run is not None and run.wait is not None and run.wait.kind == "human":
            return run
        if clock is not None:
            await clock.advance(0.1)
        else:
            await asyncio.sleep(0.01)


async def main(
    engine: Engine | None = None,
    clock: FakeClock | None = None,
    *,
    model: FakeModel | None = None,
    reviewers: ReviewChannel | None = None,
    approve: bool = True,
) -> WorkflowRun:
    """Run the pipeline on one document and return the finished run.

    Args:
        engine: Defaults to an in-memory engine on the system clock.
        clock: The engine's ``FakeClock`` in tests; advanced instead of waiting.
        model: The model client; by default one whose first call fails.
        reviewers: Where review requests go.
        approve: What the editor decides.
    """
    engine = engine or Engine("memory://")
    model = model or FakeModel(failures=1)
    reviewers = reviewers or ReviewChannel()

    @engine.on("step:retry-scheduled")
    def report_retry(event: Event) -> None:
        delay = event.data["delay"]
        print(f"step {event.step_id} failed ({event.error}); retrying in {delay:.2f}s")

    async with engine:
        pipeline = AIPipeline(model, reviewers).register(engine)
        run = await pipeline.start({"url": "https://example.com/posts/durable-workflows"})
        # The first model call fails, the engine retries the step after a short
        # backoff, and then the run waits for an editor.
        await wait_for_review_request(pipeline, run.id, clock)

        # The editor opens the link from the chat channel; the web route that
        # serves /hooks/<token> resumes the run with the editor's decision.
        request = reviewers.requests[-1]
        print(f"review requested: {request['draft']['title']!r} -> {request['link']}")
        token = request["link"].rsplit("/", 1)[-1]
        decision = {"approved": approve, "editor": "dana", "notes": "" if approve else "too short"}
        result = await resume_hook(token, decision, engine=engine)
        print(f"editor decided {decision}; run {result.run_id} is {result.run.status}")

        done = await pipeline.wait_for(run.id, timeout=10)

    analyze = done.step("analyze")
    assert analyze is not None
    print(f"analyze took {analyze.attempts} attempts; the model was called {model.calls} times")
    print(f"run {done.status}: {done.output}")
    return done


if __name__ == "__main__":
    asyncio.run(main())
