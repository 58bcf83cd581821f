"""Engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionFactory = async_sessionmaker[AsyncSession]

# How long a statement waits for another connection's write lock (web and worker share it).
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Connections kept for a SQLite file. No overflow: an overflow connection is closed when it is
# given back, so bursts would open (a thread, a file, the pragmas) and close one per checkout.
SQLITE_POOL_SIZE = 8
PG_POOL_SIZE = 10
# A PostgreSQL connection unused for this long is checked before it is handed out.
PG_PING_AFTER_IDLE = 2.0
_IDLE_SINCE = "b24mail_idle_since"


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create the async engine; SQLite gets WAL and a busy timeout so web and worker can share it."""
    if url.startswith("sqlite"):
        database = make_url(url).database or ""
        on_loop = database not in ("", ":memory:") and not database.startswith("file:")
        if on_loop:
            kwargs.setdefault("async_creator", _loop_sqlite_creator(database))
            kwargs.setdefault("pool_size", SQLITE_POOL_SIZE)
            kwargs.setdefault("max_overflow", 0)
            engine = create_async_engine(url, **kwargs)
        else:
            engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            if ":memory:" not in url:
                cursor.execute("PRAGMA journal_mode=WAL")
            # On-loop connections must never wait for a lock on the event loop: they get 0 and
            # take the long timeout only on their thread (see LoopSQLiteConnection).
            busy = 0 if on_loop else SQLITE_BUSY_TIMEOUT_MS
            cursor.execute(f"PRAGMA busy_timeout={busy}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    kwargs.setdefault("pool_size", PG_POOL_SIZE)
    # As for SQLite: overflow connections would be opened and closed again under every burst
    # (asyncpg connect, TLS attempt, authentication, type introspection: milliseconds each).
    kwargs.setdefault("max_overflow", 0)
    ping_always = kwargs.pop("pool_pre_ping", False)
    engine = create_async_engine(url, pool_pre_ping=ping_always, **kwargs)
    if not ping_always:
        _ping_when_idle(engine, PG_PING_AFTER_IDLE)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle: float) -> None:
    """Check a pooled connection before use only if it sat unused for `idle` seconds.

    SQLAlchemy's pool_pre_ping checks at every checkout, which on asyncpg is three round trips
    (BEGIN, a query, ROLLBACK): half of all round trips of a worker. A connection in steady use
    is known to be alive; one that sat idle may have been dropped (database restart, network),
    so it is checked, and replaced if dead. A connection that breaks while in use is detected by
    the error, as with pre-ping.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool drops this connection and checks out (or opens) another.
            raise DisconnectionError("connection failed its idle check") from exc


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


class LoopSQLiteConnection(aiosqlite.Connection):
    """aiosqlite, except that statements run right on the event loop's thread.

    A SQLite statement of this app takes microseconds, while handing it to aiosqlite's thread
    and back costs about 0.1 ms per call, and SQLAlchemy makes four or five such calls per
    query (cursor, execute, fetch, close, rollback): most of the time of a request went there.
    The thread is still used where waiting is possible, so the loop never blocks on it:

    - a statement that finds the database locked (SQLITE_BUSY, with busy_timeout 0 on the
      loop) is run again on the thread, with the long busy timeout;
    - COMMIT runs on the thread (it may wait for fsync);
    - while anything is queued for the thread, later calls queue behind it (order is kept).

    Writers of this process take turns on an asyncio lock (one per database file and event
    loop) from their first writing statement to the end of their transaction. SQLite admits one
    writer at a time anyway; without the lock a second writer found the database locked and
    SQLite's busy handler slept 1, 2, 5, 10… ms between tries (6 ms median, up to 0.9 s, seen
    under load), where the lock hands over the moment the first writer commits. Writers in other
    processes are still waited for with the busy timeout, on the thread.
    """

    def __init__(
        self,
        connector: Callable[[], sqlite3.Connection],
        iter_chunk_size: int,
        database: str,
    ) -> None:
        super().__init__(connector, iter_chunk_size)
        self._queued = 0
        self._queued_lock = threading.Lock()
        self._database = os.path.realpath(database)
        self._held: asyncio.Lock | None = None

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        if self._held is None and _may_write(fn, args):
            await self._take_write_lock()
        try:
            if not self._queued:
                try:
                    return fn(*args, **kwargs)
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                        raise
            return await self._on_thread(fn, *args, **kwargs)
        finally:
            self._end_of_write()

    async def _take_write_lock(self) -> None:
        lock = _write_lock(self._database)
        try:
            async with asyncio.timeout(SQLITE_BUSY_TIMEOUT_MS / 1000):
                await lock.acquire()
        except TimeoutError:
            # What SQLite itself would have said after its busy timeout.
            raise sqlite3.OperationalError("database is locked") from None
        self._held = lock

    def _end_of_write(self) -> None:
        """Hand the write lock on once this connection's transaction is over."""
        if self._held is None:
            return
        connection = self._connection
        try:
            writing = connection is not None and self._running and connection.in_transaction
        except sqlite3.ProgrammingError:  # closed meanwhile
            writing = False
        if not writing:
            lock, self._held = self._held, None
            lock.release()

    def stop(self) -> asyncio.Future[Any] | None:
        future = super().stop()
        self._end_of_write()
        return future

    async def _on_thread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running:
            raise ValueError("Connection closed")
        connection = self._conn

        def waiting() -> Any:
            try:
                connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                try:
                    return fn(*args, **kwargs)
                finally:
                    connection.execute("PRAGMA busy_timeout=0")
            finally:
                # Counted down here, not by the awaiting task: a cancelled task must not let
                # the loop use the connection while the thread still does.
                with self._queued_lock:
                    self._queued -= 1

        with self._queued_lock:
            self._queued += 1
        return await super()._execute(waiting)  # type: ignore[no-untyped-call]

    async def commit(self) -> None:
        try:
            await self._on_thread(self._conn.commit)
        finally:
            self._end_of_write()


_WRITE_PREFIXES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "BEGIN")


def _may_write(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    """Whether a call is a statement that may start a write (SQLAlchemy's SQL is upper case)."""
    name = getattr(fn, "__name__", "")
    if name not in ("execute", "executemany", "executescript") or not args:
        return False
    sql = args[0]
    return isinstance(sql, str) and sql.lstrip()[:7].upper().startswith(_WRITE_PREFIXES)


# One write lock per database file and event loop, shared by every engine on that file.
_WRITE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _write_lock(database: str) -> asyncio.Lock:
    locks = _WRITE_LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(database, asyncio.Lock())


def _loop_sqlite_creator(database: str) -> Callable[[], Any]:
    async def connect() -> LoopSQLiteConnection:
        connection = LoopSQLiteConnection(
            lambda: sqlite3.connect(database, timeout=0, check_same_thread=False),
            64,
            database,
        )
        connection._thread.daemon = True
        await connection
        return connection

    return connect
