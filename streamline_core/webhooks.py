"""Hooks: unguessable tokens that resume a waiting run from outside (webhooks, emails).

The token comes from :mod:`secrets`; only its SHA-256 is stored on the run, so a
leaked database does not leak resume rights. A token works once: resuming
clears the wait and with it the hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamline_core.defaults import default_engine

if TYPE_CHECKING:
    from streamline_core.context import StepContext
    from streamline_core.engine import Engine
    from streamline_core.run import WorkflowRun

__all__ = ["Hook", "HookResumeResult", "create_hook", "resume_hook", "hash_token"]


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a hook token (what the run stores)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Hook:
    """A resume hook for the current step.

    Attributes:
        token: The secret to hand out (in a URL, an email link, ...):
            ``<run_id>.<256 random bits>``.
        path: ``/hooks/<token>``, a suggested route.
        run_id: The run it resumes.
        step_id: The step that waits.
        reason: What it is for.
    """

    token: str
    path: str
    run_id: str
    step_id: str
    reason: str | None = None

    @property
    def token_hash(self) -> str:
        """What the run stores instead of the token."""
        return hash_token(self.token)


@dataclass(frozen=True)
class HookResumeResult:
    """What ``resume_hook`` returns: the run id and the run after resuming."""

    run_id: str
    run: WorkflowRun


def create_hook(ctx: StepContext, reason: str | None = None) -> Hook:
    """Create a hook for the step running in ``ctx``.

    The next ``ctx.wait(...)`` of this step uses it (or pass it explicitly with
    ``ctx.wait(..., hook=hook)``).
    """
    # The run id prefix lets resume_hook find the run even before the wait is
    # committed; the 256-bit secret after it is what makes the token unguessable.
    token = f"{ctx.run_id}.{secrets.token_urlsafe(32)}"
    hook = Hook(
        token=token, path=f"/hooks/{token}", run_id=ctx.run_id, step_id=ctx.step_id, reason=reason
    )
    ctx._hook_hash = hook.token_hash
    return hook


async def resume_hook(
    token: str, payload: Any = None, engine: Engine | None = None
) -> HookResumeResult:
    """Resume the run waiting on ``token`` with ``payload``.

    A token that arrives while its step is still executing (before the wait
    is stored) is held for up to a few seconds until the wait lands.

    Raises:
        WorkflowNotFoundError: (404) the token is empty, malformed, unknown or
            already used; nothing changes.
    """
    if engine is None:
        engine = default_engine()
    run = await engine._resume_by_hook(token, payload)
    return HookResumeResult(run_id=run.id, run=run)
