"""Newsletter Automation: timers, events with a timeout, and branching on the outcome.

One run per subscriber:

1. ``send_welcome`` — send a welcome email;
2. ``wait_a_bit`` — ``ctx.sleep`` until the first issue is due (days, in production);
3. ``send_issue`` — send the first issue;
4. ``await_open`` — ``ctx.wait_for("email.opened", timeout=...)``: wait for the
   tracking pixel's event, but not forever;
5. ``follow_up`` — ``get_wait_resolution`` tells a timeout apart from a real
   event, and the run branches: thank readers, nudge the others.

Also shows a handler class holding its dependencies (the email sender), a
targeted ``engine.emit_event(..., run_id=...)``, step outputs given as pydantic
models, and ``ctx.idempotency_key`` used as the provider's idempotency key so
that a retried step never sends the same email twice.

Run it (about 1.5 real seconds: the "days" are shortened):

    python docs/examples/newsletter.py

Tests pass a ``FakeClock`` and real-sized durations (3 days, a week) and the
example advances the clock instead of waiting.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from streamline_core import (
    Engine,
    StepContext,
    Workflow,
    WorkflowRun,
    get_wait_resolution,
)
from streamline_testing import FakeClock


class Email(BaseModel):
    """An email as the provider accepted it."""

    message_id: str
    to: str
    subject: str


class Outbox:
    """A fake email provider that records what it sends (swap in SES, Postmark, ...).

    Like real providers it deduplicates on an idempotency key, here ``message_id``.
    """

    def __init__(self) -> None:
        self.sent: list[Email] = []

    async def send(self, to: str, subject: str, *, message_id: str) -> Email:
        for email in self.sent:
            if email.message_id == message_id:
                return email  # already sent by an earlier attempt of the same step
        email = Email(message_id=message_id, to=to, subject=subject)
        self.sent.append(email)
        return email

    def to(self, address: str) -> list[str]:
        """Subjects sent to ``address``, in order."""
        return [email.subject for email in self.sent if email.to == address]


class Newsletter:
    """The workflow's steps, with the email sender and the schedule they need."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        first_issue_after: timedelta,
        open_timeout: timedelta,
    ) -> None:
        self.outbox = outbox
        self.first_issue_after = first_issue_after
        self.open_timeout = open_timeout

    async def send_welcome(self, ctx: StepContext) -> Email:
        return await self.outbox.send(
            ctx.context["email"],
            f"Welcome, {ctx.context['name']}!",
            message_id=ctx.idempotency_key(),  # stable across retries and recovery
        )

    async def wait_a_bit(self, ctx: StepContext) -> None:
        await ctx.sleep(self.first_issue_after)

    async def send_issue(self, ctx: StepContext) -> Email:
        return await self.outbox.send(
            ctx.context["email"], "Issue #1: durable workflows", message_id=ctx.idempotency_key()
        )

    async def await_open(self, ctx: StepContext) -> None:
        # Resumed by engine.emit_event("email.opened", data, run_id=...);
        # after open_timeout the step completes with a WaitResolution instead.
        await ctx.wait_for("email.opened", timeout=self.open_timeout)

    async def follow_up(self, ctx: StepContext) -> dict[str, Any]:
        opened = ctx.get_output("await_open")
        if get_wait_resolution(opened) is not None:  # timed out: nobody opened it
            email = await self.outbox.send(
                ctx.context["email"], "We miss you", message_id=ctx.idempotency_key()
            )
            return {"engaged": False, "sent": email.subject}
        email = await self.outbox.send(
            ctx.context["email"], "Thanks for reading: Issue #2", message_id=ctx.idempotency_key()
        )
        return {"engaged": True, "opened": opened, "sent": email.subject}

    def register(self, engine: Engine) -> Workflow:
        return engine.workflow(
            "newsletter",
            steps={
                "send_welcome": self.send_welcome,
                "wait_a_bit": self.wait_a_bit,
                "send_issue": self.send_issue,
                "await_open": self.await_open,
                "follow_up": self.follow_up,
            },
            context=lambda input: {"email": input["email"], "name": input["name"]},
        )


async def wait_until_waiting(workflow: Workflow, run_id: str, kind: str) -> WorkflowRun:
    """Poll the run like a dashboard would, until it waits on a ``kind`` wait."""
    while True:
        run = await workflow.get(run_id)
        if run is not None and run.wait is not None and run.wait.kind == kind:
            return run
        await asyncio.sleep(0.01)


async def main(
    engine: Engine | None = None,
    clock: FakeClock | None = None,
    *,
    outbox: Outbox | None = None,
    first_issue_after: timedelta = timedelta(seconds=0.5),
    open_timeout: timedelta = timedelta(seconds=1),
) -> dict[str, WorkflowRun]:
    """Subscribe Alice (who reads the issue) and Bob (who doesn't); return both runs.

    Args:
        engine: Defaults to an in-memory engine on the system clock.
        clock: The engine's ``FakeClock`` in tests; advanced instead of waiting.
        outbox: Where emails go; a fresh ``Outbox`` by default.
        first_issue_after: The sleep before the first issue (days, in production).
        open_timeout: How long to wait for the issue to be opened (a week, say).
    """
    engine = engine or Engine("memory://")
    outbox = outbox or Outbox()
    async with engine:
        newsletter = Newsletter(
            outbox, first_issue_after=first_issue_after, open_timeout=open_timeout
        ).register(engine)
        runs = {
            name: await newsletter.start({"email": f"{name}@example.com", "name": name.title()})
            for name in ("alice", "bob")
        }
        wait = first_issue_after.total_seconds()
        print(f"subscribed {', '.join(runs)}; the first issue goes out in {wait:g}s")

        if clock is not None:  # tests: once both runs sleep, skip the days
            for run in runs.values():
                await wait_until_waiting(newsletter, run.id, "timer")
            await clock.advance(first_issue_after.total_seconds())

        for run in runs.values():  # the first issue is out; the runs wait for it to be opened
            await wait_until_waiting(newsletter, run.id, "event")

        # Alice opens it: the tracking pixel's web handler knows her run id.
        resumed = await engine.emit_event("email.opened", {"by": "alice"}, run_id=runs["alice"].id)
        print(f"alice opened the issue (resumed {resumed} run)")

        # Bob never opens his: his wait times out.
        if clock is not None:
            await clock.advance(open_timeout.total_seconds())
        done = {
            name: await newsletter.wait_for(run.id, timeout=open_timeout.total_seconds() + 10)
            for name, run in runs.items()
        }

    for name, run in done.items():
        print(f"{name}: {run.status}, engaged={run.output['engaged']}")
        print(f"  emails: {outbox.to(f'{name}@example.com')}")
    return done


if __name__ == "__main__":
    asyncio.run(main())
