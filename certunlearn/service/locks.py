"""The state lock that serialises a state's writers: a file lock (one host) or a PostgreSQL advisory lock.

A request holds the lock from its catch-up to its commit (:mod:`certunlearn.service.deletion_service`).
Which lock depends on where the ledger lives:

* :class:`FileLock` — ``fcntl.flock`` on the state directory's ``state.lock``, for an SQLite ledger. It
  serialises the processes of one host; on network file systems whose ``flock`` is not shared between
  hosts it does not cross hosts.
* :class:`AdvisoryLock` — ``pg_try_advisory_lock(key)`` on the ledger's PostgreSQL connection, for a
  PostgreSQL ledger: a session lock held by the server, so it serialises writers on every host that
  reaches the database, and the server releases it when the session ends (a killed process's
  connection closes, so a crash never leaves the state locked).

Both are polled by :func:`acquire` until a deadline. Neither is re-entrant by itself: the service
counts its own nesting.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "state.lock"
    >>> a, b = FileLock(path), FileLock(path)
    >>> a.try_acquire(), b.try_acquire()
    (True, False)
    >>> acquire(b, timeout=0.01, where="demo")
    Traceback (most recent call last):
    ...
    certunlearn.errors.StateError: demo: the state stayed locked by another process for 0.01 s
    >>> a.release(); b.try_acquire()
    True
    >>> b.release(); a.close(); b.close()
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from certunlearn.errors import StateError

if TYPE_CHECKING:
    from certunlearn.service.sql import Connection

__all__ = ["AdvisoryLock", "FileLock", "StateLock", "acquire"]

_POLL = 0.002  # seconds between tries


class StateLock(Protocol):
    """What the service needs of a lock."""

    def try_acquire(self) -> bool:
        """Take the lock if it is free; whether it was taken."""
        ...

    def release(self) -> None:
        """Give the lock back."""
        ...

    def close(self) -> None:
        """Free what the lock holds (after :meth:`release`)."""
        ...


class FileLock:
    """``fcntl.flock`` on ``path`` (created if missing). One host; see the module docstring.

    Raises:
        OSError: ``path`` cannot be opened for writing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        """Take the lock if no other open file holds it."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        """Unlock."""
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the file (which unlocks it)."""
        os.close(self._fd)


class AdvisoryLock:
    """A PostgreSQL session advisory lock ``key`` on the ledger's connection ``con``. Every host; see the
    module docstring."""

    def __init__(self, con: Connection, key: int) -> None:
        self._con, self.key = con, key

    def try_acquire(self) -> bool:
        """``pg_try_advisory_lock(key)``."""
        return bool(self._con.value("SELECT pg_try_advisory_lock(?)", (self.key,)))

    def release(self) -> None:
        """``pg_advisory_unlock(key)`` (a lost connection has released it already)."""
        from certunlearn.service.sql import DatabaseError

        with contextlib.suppress(DatabaseError):
            self._con.value("SELECT pg_advisory_unlock(?)", (self.key,))

    def close(self) -> None:
        """Nothing: closing the ledger's connection ends the session and every lock it held."""


def acquire(lock: StateLock, *, timeout: float, where: str) -> None:
    """Take ``lock``, trying every 2 ms for up to ``timeout`` seconds.

    Raises:
        StateError: Still held by another process after ``timeout`` seconds (``where`` names the state).
    """
    deadline = time.monotonic() + timeout
    while not lock.try_acquire():
        if time.monotonic() > deadline:
            raise StateError(f"{where}: the state stayed locked by another process for {timeout:g} s")
        time.sleep(_POLL)
