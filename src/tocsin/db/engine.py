"""Engine and session setup for SQLite (WAL, foreign keys) and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import PoolResetState

from tocsin.db.raw import Raw
from tocsin.db.wal import WalFile
from tocsin.db.writers import Ticket, Writers


def normalize_url(url: str) -> str:
    """Pick the async driver for plain `sqlite://` and `postgresql://` URLs."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a commit is on disk before Tocsin answers 2xx, even across a power cut (NORMAL only
    # survives a process crash). Group commit keeps the cost to one fsync per batch.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _in_transaction(driver: Any) -> bool:
    """Whether an aiosqlite or psycopg connection has a transaction open (read without a trip)."""
    if isinstance(driver, psycopg.AsyncConnection):
        return driver.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    return bool(driver.in_transaction)


# PostgreSQL's answers that a retry of the same transaction may not meet: a deadlock or a serialization
# failure aborted it, or a concurrent transaction it waited for committed the same new key first
# (read committed: the retry sees that row and updates it).
_TRANSIENT = frozenset({"40P01", "40001", "23505"})


def transient(exc: BaseException) -> bool:
    """Whether a failed transaction is worth running again as it was (PostgreSQL's deadlocks, serialization
    failures and unique violations met on a concurrent insert), whether raised by psycopg itself (the
    raw lane) or wrapped by SQLAlchemy (`.orig`)."""
    error = getattr(exc, "orig", exc)
    return isinstance(error, psycopg.Error) and error.sqlstate in _TRANSIENT


def _reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
    """A connection back in the pool is rolled back only if a transaction is still open: after a commit
    there is none, and the default unconditional rollback costs a trip to the database (on SQLite, a hop
    to aiosqlite's thread) at the end of every transaction."""
    if state.asyncio_safe and _in_transaction(dbapi_connection.driver_connection):
        dbapi_connection.rollback()


def create_engine(url: str) -> AsyncEngine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Any thread may use a connection: aiosqlite's own, and the event loop's for a small commit
        # (`Raw.drive(small=True)`); one user at a time, as the pool hands each out.
        engine = create_async_engine(
            url, pool_reset_on_return=None, connect_args={"check_same_thread": False}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_reset_on_return=None)
        event.listen(engine.sync_engine, "checkout", _ping_if_idle)
        event.listen(engine.sync_engine, "checkin", _idle_since)
    event.listen(engine.sync_engine, "reset", _reset)
    return engine


PING_AFTER_IDLE = 5.0  # seconds a pooled PostgreSQL connection may rest before it is pinged on checkout


def _idle_since(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """A pooled connection that has rested a while is pinged before use (a restarted or failed-over
    PostgreSQL has closed it; the pool then retries with a new one). One in steady use is not:
    SQLAlchemy's `pool_pre_ping` pinged on every checkout, a round trip per transaction; without it,
    ingest of one alert per request went 15-25% faster (bench/RESULTS.md). A connection that breaks in
    use fails that one transaction and the pool drops all its connections: the ingest pipeline retries."""
    since = record.info.get("idle_since")
    if since is None or time.monotonic() - since < PING_AFTER_IDLE:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    except Exception as exc:
        raise DisconnectionError("the pooled connection is gone") from exc


class Database:
    """One engine plus the two ways in: `session()` to read and `transaction()` to write."""

    def __init__(self, url: str, shared: bool = False) -> None:
        self.url = normalize_url(url)
        self.shared = shared  # written by several processes of this Tocsin (`tocsin serve --workers`)
        self.engine = create_engine(self.url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time; queueing writers here avoids SQLITE_BUSY inside one process.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self.writers: Writers | None = None  # SQLite on a file: see `_file_writers`
        self._raw: tuple[AsyncConnection, Raw] | None = None  # SQLite: the connection of `raw()`
        database = make_url(self.url).database if self.is_sqlite else None
        self._file = database if database and database != ":memory:" else None
        # Called with the topics a committed transaction asked to publish (see publish_after_commit).
        self.on_commit: Callable[..., None] | None = None
        # Run in order at the end of every write transaction, before it commits: work that belongs in
        # the transaction of its cause (the engine fires timers due at once, the sender claims new
        # messages). By name, so registering again replaces; a hook that raises rolls back.
        self.before_commit: dict[str, Callable[[AsyncSession], Awaitable[None]]] = {}

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any error."""
        if self._write_lock is None:
            async with self._sessions() as session:
                async with session.begin():
                    yield session
                    await self._before_commit(session)
                self._committed(session)
            return
        async with self._write_lock, self._sessions() as session:
            ticket = Ticket()
            try:
                async with session.begin():
                    # The write lock first: what the transaction reads stays true until it commits,
                    # also against other processes on the file (`tocsin serve --workers`, the CLI), which
                    # wait their turn instead of failing with SQLITE_BUSY on upgrading a read to a write.
                    raw = await Raw.of(await session.connection(), self._file_writers())
                    await raw.begin(ticket)
                    yield session
                    await self._before_commit(session)
            finally:
                if self.writers is not None:
                    self.writers.give_back(ticket)
            self._committed(session)

    @asynccontextmanager
    async def raw(self) -> AsyncIterator[Raw]:
        """A connection's driver, outside any session, for work that commits itself
        (`Raw.drive(plan, commit=True)`). PostgreSQL: a pooled connection. SQLite: as this process's one
        writer, as `transaction` is, on a connection kept for this use alone: taking one from the pool
        and giving it back cost three turns of the event loop (SQLAlchemy closes it in a task of its
        own), each a wait behind every request ready meanwhile (0.9 ms a commit under load)."""
        if self._write_lock is None:
            async with self.engine.connect() as connection:
                yield await Raw.of(connection)
            return
        async with self._write_lock:
            if self._raw is None:
                connection = await self.engine.connect()
                wal = WalFile(self._file) if self._file is not None else None
                raw = await Raw.of(
                    connection, self._file_writers(), ahead=self.shared, any_thread=True, wal=wal
                )
                if wal is not None:  # it syncs its commits itself, after the turn to write (`tocsin.db.wal`)
                    await raw.driver.execute("PRAGMA synchronous=NORMAL")
                self._raw = (connection, raw)
            try:
                yield self._raw[1]
            except BaseException:
                await self._drop_raw()
                raise

    async def _drop_raw(self) -> None:
        """The lane's connection is closed, never handed out again: a plan cut short may still run on
        aiosqlite's thread (aiosqlite queues the close after it), and it runs `synchronous=NORMAL`."""
        if self._raw is not None:
            (connection, raw), self._raw = self._raw, None
            await connection.invalidate()
            await connection.close()
            if raw.wal is not None:
                raw.wal.close()

    def _file_writers(self) -> Writers | None:
        """SQLite on a file: the turn to write it, shared with the other processes (made on first use)."""
        if self.writers is None and self._file is not None:
            self.writers = Writers(self._file)
        return self.writers

    async def _before_commit(self, session: AsyncSession) -> None:
        for hook in self.before_commit.values():
            await hook(session)

    def _committed(self, session: AsyncSession) -> None:
        topics = session.info.pop(_TOPICS, None)
        if topics and self.on_commit is not None:
            self.on_commit(*topics)
        for callback in session.info.pop(_AFTER, ()):
            callback()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self._drop_raw()
        await self.engine.dispose()
        if self.writers is not None:
            self.writers.close()
            self.writers = None


_TOPICS = "tocsin.publish"
_AFTER = "tocsin.after_commit"


def publish_after_commit(session: AsyncSession, *topics: str) -> None:
    """Wake this process's waiters on `topics` once the session's transaction has committed."""
    session.info.setdefault(_TOPICS, set()).update(topics)


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Call `callback` once the session's transaction has committed (never if it rolls back)."""
    session.info.setdefault(_AFTER, []).append(callback)


async def advisory_lock(session: AsyncSession, key: str) -> None:
    """Serialise transactions that contend for `key` until commit (PostgreSQL; SQLite has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
