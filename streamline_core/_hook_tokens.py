"""Hook tokens: what a resume hook is, how its token is made, and the hash a run stores.

Model layer: imports only ``run`` (for a type). The token comes from
:mod:`secrets`; only its SHA-256 is stored on the run, so a leaked database
does not leak resume rights. A token works once: resuming clears the wait and
with it the hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamline_core.run import WorkflowRun

__all__ = ["Hook", "HookResumeResult", "hash_token", "new_hook", "run_id_of"]


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


def new_hook(run_id: str, step_id: str, reason: str | None) -> Hook:
    """A fresh hook for ``step_id`` of ``run_id``."""
    # The run id prefix lets resume_hook find the run even before the wait is
    # committed; the 256-bit secret after it is what makes the token unguessable.
    token = f"{run_id}.{secrets.token_urlsafe(32)}"
    return Hook(token=token, path=f"/hooks/{token}", run_id=run_id, step_id=step_id, reason=reason)


def run_id_of(token: object) -> str | None:
    """The run id a well-formed token names, or ``None`` for a malformed one."""
    if not isinstance(token, str) or not 16 <= len(token) <= 256 or "." not in token:
        return None
    if not token.isascii():  # tokens we make are ASCII; anything else is a wrong token
        return None
    return token.partition(".")[0]
