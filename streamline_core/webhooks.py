"""Hooks: unguessable tokens that resume a waiting run from outside (webhooks, emails).

Façade layer: ``create_hook`` and ``resume_hook`` over the step context and
an engine (the default one when none is given). What a token is lives in
:mod:`streamline_core._hook_tokens`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamline_core._hook_tokens import Hook, HookResumeResult, hash_token
from streamline_core.defaults import default_engine

if TYPE_CHECKING:
    from streamline_core.context import StepContext
    from streamline_core.engine import Engine

__all__ = ["Hook", "HookResumeResult", "create_hook", "resume_hook", "hash_token"]


def create_hook(ctx: StepContext, reason: str | None = None) -> Hook:
    """Create a hook for the step running in ``ctx``.

    The next ``ctx.wait(...)`` of this step uses it (or pass it explicitly with
    ``ctx.wait(..., hook=hook)``).
    """
    return ctx.create_hook(reason)


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
    run = await engine.resume_hook(token, payload)
    return HookResumeResult(run_id=run.id, run=run)
