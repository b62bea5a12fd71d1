"""``FileIdentity``: notice the database file being removed or replaced under an open store.

SQLite keeps writing to the file it opened, even after that file was
unlinked: a store whose directory was removed would go on "committing" into
a file nobody can open again, and a new worker would start a fresh database
at the path (split brain). So writes compare the path's inode with the one
opened, at most every :data:`CHECK_EVERY` seconds (one ``stat``).
"""

from __future__ import annotations

import os
import time

from streamline_core.errors import StoreUnavailableError

__all__ = ["CHECK_EVERY", "FileIdentity"]

CHECK_EVERY = 0.1
"""Seconds between two checks of the path (monotonic time)."""


class FileIdentity:
    """The (device, inode) of the database file as opened, and a cheap re-check."""

    def __init__(self, path: str) -> None:
        self._path = path
        st = os.stat(path)
        self._identity = (st.st_dev, st.st_ino)
        self._next = time.monotonic() + CHECK_EVERY

    def check(self, *, now: float | None = None) -> None:
        """Raise if the path no longer names the file that was opened (throttled).

        Raises:
            StoreUnavailableError: the file was removed, or another file took its place.
        """
        moment = time.monotonic() if now is None else now
        if moment < self._next:
            return
        self._next = moment + CHECK_EVERY
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            raise StoreUnavailableError(
                f"SQLite database {self._path} was removed while open: writes would go to an "
                "unlinked file and be lost; restore the file or restart with a new store"
            ) from None
        except OSError as exc:
            raise StoreUnavailableError(
                f"SQLite database {self._path} cannot be checked: {exc.strerror or exc}"
            ) from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise StoreUnavailableError(
                f"SQLite database {self._path} was replaced by another file while open: "
                "this store still writes to the old one; restart with a new store"
            )
