"""The turn to write one SQLite file, across processes.

Every write transaction takes SQLite's write lock first (`BEGIN IMMEDIATE`). When several processes
write one file (`tocsin serve --workers`), the one that finds it taken waits in SQLite's busy
handler, which polls, sleeping 1, 2, 5 ... up to 100 ms between tries: under load, a waiter can lose
hundreds of milliseconds. So writers first take their turn on a lock file beside the database
(`tocsin.db-writers`, `flock`): the kernel queues the waiters and wakes the next one the moment the
lock is let go. SQLite's own lock stays the guarantee; the turn only orders who asks for it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass


class Abandoned(Exception):
    """The transaction that asked for the turn gave up (was cancelled) before it came."""


@dataclass(eq=False)
class Ticket:
    """One transaction's claim on the turn."""

    abandoned: bool = False


class Writers:
    def __init__(self, database: str) -> None:
        self.fd = os.open(f"{database}-writers", os.O_RDWR | os.O_CREAT, 0o600)
        self._mutex = threading.Lock()
        self._holder: Ticket | None = None

    def take(self, ticket: Ticket) -> None:
        """Block until this process has the turn, for `ticket` (on a thread that may block)."""
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        with self._mutex:
            if ticket.abandoned:
                if self._holder is None:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)
                raise Abandoned
            self._holder = ticket

    def take_now(self, ticket: Ticket) -> bool:
        """Take the turn for `ticket` if no one holds it, without waiting: whether it was taken."""
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        with self._mutex:
            self._holder = ticket
        return True

    def give_back(self, ticket: Ticket) -> None:
        """Done with the turn, or no longer waiting for it (from any thread)."""
        with self._mutex:
            ticket.abandoned = True
            if self._holder is ticket:
                self._holder = None
                fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self.fd)
