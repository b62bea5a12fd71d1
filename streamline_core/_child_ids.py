"""Child run ids: derived, never random, so a re-executed step finds its children.

Model layer: imports nothing of streamline_core.

A child's id is a function of (parent run id, step id, attempt, key or
position), and of the parent's epoch once it was rewound and its goto count
once it jumped. A step re-executed
after a crash runs under the same attempt number (a recovery is not an
attempt), so it derives the same ids and finds the children it already
started instead of starting them twice; a retry is a new attempt, and a
rewind a new epoch, so both start new children.
"""

from __future__ import annotations

import hashlib
import json

__all__ = ["child_run_id"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def child_run_id(
    parent_run_id: str,
    step_id: str,
    attempt: int,
    slot: tuple[str, str | int],
    epoch: int = 0,
    gotos: int = 0,
) -> str:
    """The id of the child started by ``step_id``'s ``attempt`` of ``parent_run_id`` at ``slot``.

    Args:
        parent_run_id: The parent run.
        step_id: The step starting the child.
        attempt: That step's attempt number.
        slot: ``("key", key)`` for a caller's key, ``("pos", n)`` for the n-th
            child the attempt started without one (keys and positions never collide).
        epoch: The parent's epoch (``rewind_to`` bumps it and resets attempts,
            so a rewound step starts new children too).
        gotos: The parent's ``ctx.goto`` count (a jump back resets attempts
            too, so a step run again by a loop starts new children).

    Returns:
        26 characters in the run-id alphabet: the parent's time prefix (so
        children sort near their parent) and 16 characters of a SHA-256.
    """
    parts: list[object] = [parent_run_id, step_id, attempt, slot[0], slot[1]]
    if epoch:
        parts.append(epoch)
    if gotos:
        parts.append(["goto", gotos])
    raw = json.dumps(parts, separators=(",", ":"))
    value = int.from_bytes(hashlib.sha256(raw.encode()).digest()[:10], "big")
    tail = []
    for _ in range(16):
        tail.append(_CROCKFORD[value & 31])
        value >>= 5
    prefix = parent_run_id[:10] if len(parent_run_id) >= 10 else parent_run_id.ljust(10, "0")
    prefix = "".join(c if c in _CROCKFORD else "0" for c in prefix.upper())
    return prefix + "".join(reversed(tail))
