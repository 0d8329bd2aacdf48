"""A SQLite file's write-ahead log, synced by Tocsin after the write lock is let go.

With `synchronous=FULL` in WAL mode SQLite fsyncs the log at every commit while it holds the write
lock (0.2-0.5 ms here), and every other writer waits, in this process or another (`tocsin serve
--workers`). `synchronous=NORMAL` is FULL less exactly that one fsync (SQLite still syncs the log's
header and at checkpoints). The storm lane's connection runs NORMAL and fsyncs the log itself
(`WalFile.sync`) right after its commit, once the turn to write is given back, before it answers
anything: a 2xx still means on disk, across a power cut, and another process writes meanwhile.
A commit is visible to readers for the length of that fsync before it is durable.
"""

from __future__ import annotations

import os


class WalFile:
    def __init__(self, database: str) -> None:
        self.path = f"{database}-wal"
        self._fd: int | None = None

    def sync(self) -> None:
        """fsync the log; if it was removed and made anew since it was opened (SQLite deletes it when
        the last connection closes, after a checkpoint has put every commit in the database file), the
        new one. No log at all: every commit is in the database file already."""
        while True:
            if self._fd is None:
                try:
                    self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    return
            os.fsync(self._fd)
            try:
                same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
            except FileNotFoundError:
                return
            if same:
                return
            self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
