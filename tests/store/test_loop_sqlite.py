"""LoopSQLiteConnection (bot/store/db.py): statements on the event loop, one writer at a time per
process, SQLite's busy wait on the thread, and the aiosqlite internals all this stands on.

No test here reads a clock: every wait is for an event or a state (a task blocked on the lock,
a call queued for the thread), with a generous deadline that only turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiosqlite
import aiosqlite.cursor
import pytest

from bot.store import db
from bot.store.db import LoopSQLiteConnection, _loop_sqlite_creator, _may_write, _write_lock

DEADLINE = 30.0  # seconds before a wait that should end is called a hang


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "loop.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (n INTEGER)")
    setup.commit()
    setup.close()
    return str(path)


@pytest.fixture
async def connect(database: str) -> AsyncIterator[Callable[[], Awaitable[LoopSQLiteConnection]]]:
    opened: list[LoopSQLiteConnection] = []

    async def open_one() -> LoopSQLiteConnection:
        connection = await _loop_sqlite_creator(database)()
        assert isinstance(connection, LoopSQLiteConnection)
        opened.append(connection)
        return connection

    yield open_one
    for connection in opened:
        if connection._connection is not None:
            await connection.close()


@pytest.fixture
def foreign_writer(database: str) -> Iterator[sqlite3.Connection]:
    """Another process's writer, as SQLite sees it: a plain connection, outside our lock."""
    other = sqlite3.connect(database, timeout=0, isolation_level=None)
    yield other
    if other.in_transaction:
        other.rollback()
    other.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(DEADLINE):
        while not condition():
            await asyncio.sleep(0.005)
    assert condition(), what


async def insert(connection: LoopSQLiteConnection, n: int) -> None:
    cursor = await connection.cursor()
    await cursor.execute("INSERT INTO t (n) VALUES (?)", (n,))
    await cursor.close()


async def count(connection: LoopSQLiteConnection) -> int:
    cursor = await connection.cursor()
    await cursor.execute("SELECT count(*) FROM t")
    row = await cursor.fetchone()
    await cursor.close()
    assert row is not None
    return int(row[0])


# --- the aiosqlite internals LoopSQLiteConnection relies on ------------------------------------
# aiosqlite is pinned (0.22.x). If one of these fails after an upgrade, LoopSQLiteConnection
# must be re-read against the new aiosqlite before the pin moves.


def test_aiosqlite_connection_constructor_is_connector_and_chunk_size() -> None:
    names = list(inspect.signature(aiosqlite.Connection.__init__).parameters)
    assert names[:3] == ["self", "connector", "iter_chunk_size"], aiosqlite.__version__


def test_aiosqlite_has_the_private_members_we_override_or_read() -> None:
    connection_class = aiosqlite.Connection
    assert inspect.iscoroutinefunction(connection_class._execute)
    assert isinstance(inspect.getattr_static(connection_class, "_conn"), property)
    assert inspect.iscoroutinefunction(connection_class.commit)
    assert callable(connection_class.stop)
    # Every cursor call goes through the connection's _execute, the one door we guard.
    source = inspect.getsource(aiosqlite.cursor.Cursor._execute)
    assert "self._conn._execute(fn, *args, **kwargs)" in source, aiosqlite.__version__


async def test_aiosqlite_state_after_connect_and_stop(database: str) -> None:
    connection = aiosqlite.Connection(lambda: sqlite3.connect(database), 64)
    assert isinstance(connection._thread, threading.Thread)
    connection._thread.daemon = True  # settable before start, as _loop_sqlite_creator does
    await connection
    assert connection._running is True
    assert isinstance(connection._connection, sqlite3.Connection)
    assert connection._conn is connection._connection
    future = connection.stop()
    assert connection._running is False
    assert future is not None
    await future
    assert connection._connection is None
    with pytest.raises(ValueError, match="Connection closed"):
        await connection._execute(lambda: None)


async def test_aiosqlite_execute_runs_on_its_thread_in_order(database: str) -> None:
    connection = await aiosqlite.Connection(lambda: sqlite3.connect(database), 64)
    try:
        loop_thread = threading.get_ident()
        seen: list[int] = []

        def record(n: int) -> int:
            seen.append(n)
            return threading.get_ident()

        threads = await asyncio.gather(*(connection._execute(record, n) for n in range(20)))
        assert seen == list(range(20))  # one FIFO queue: order is kept
        assert set(threads) == {connection._thread.ident} and loop_thread not in threads
    finally:
        await connection.close()


async def test_aiosqlite_cursor_calls_name_the_sqlite3_method_and_pass_the_sql_first(
    database: str,
) -> None:
    """_may_write recognises a statement by the function's name and its first argument."""
    calls: list[tuple[str, tuple[Any, ...]]] = []

    class Spy(aiosqlite.Connection):
        async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            calls.append((getattr(fn, "__name__", ""), args))
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    connection = await Spy(lambda: sqlite3.connect(database), 64)
    try:
        cursor = await connection.cursor()
        await cursor.execute("INSERT INTO t (n) VALUES (?)", (1,))
        await cursor.executemany("INSERT INTO t (n) VALUES (?)", [(2,), (3,)])
        await cursor.executescript("DELETE FROM t;")
        await cursor.close()
        await connection.rollback()
    finally:
        await connection.close()
    named = dict(calls)
    assert named["execute"][0] == "INSERT INTO t (n) VALUES (?)"
    assert named["executemany"][0] == "INSERT INTO t (n) VALUES (?)"
    assert named["executescript"][0] == "DELETE FROM t;"
    assert {"cursor", "close", "rollback"} <= set(named)


# --- what LoopSQLiteConnection does ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sql", "writes"),
    [
        ("execute", "INSERT INTO t VALUES (1)", True),
        ("execute", "  update t SET n = 2", True),
        ("executemany", "DELETE FROM t", True),
        ("executescript", "CREATE TABLE u (n)", True),
        ("execute", "BEGIN", True),
        ("execute", "SELECT * FROM t", False),
        ("execute", "PRAGMA foreign_keys=ON", False),
        ("fetchall", "INSERT INTO t VALUES (1)", False),  # not a statement call
    ],
)
def test_may_write(name: str, sql: str, writes: bool) -> None:
    def fn() -> None: ...

    fn.__name__ = name
    assert _may_write(fn, (sql,)) is writes


async def test_statements_run_on_the_loop_thread(
    connect: Callable[[], Awaitable[LoopSQLiteConnection]],
) -> None:
    connection = await connect()
    assert await connection._execute(threading.get_ident) == threading.get_ident()
    await insert(connection, 1)
    await connection.commit()
    assert await count(connection) == 1


@pytest.mark.parametrize("end", ["commit", "rollback", "close"])
async def test_a_second_writer_waits_for_the_first_to_end_its_transaction(
    connect: Callable[[], Awaitable[LoopSQLiteConnection]], database: str, end: str
) -> None:
    first, second = await connect(), await connect()
    await insert(first, 1)  # first's write transaction is open: it holds the lock
    lock = _write_lock(os.path.realpath(database))
    assert lock.locked() and first._held is lock
    waiting = asyncio.create_task(insert(second, 2))
    # Statements run on the loop: unblocked, the insert would be done within a few turns.
    for _ in range(50):
        await asyncio.sleep(0)
    assert not waiting.done() and second._held is None
    await getattr(first, end)()
    async with asyncio.timeout(DEADLINE):
        await waiting
    assert second._held is lock and first._held is None
    await second.commit()
    assert not lock.locked()
    expected = 2 if end == "commit" else 1
    assert await count(second) == expected


async def test_reads_do_not_take_the_write_lock(
    connect: Callable[[], Awaitable[LoopSQLiteConnection]], database: str
) -> None:
    writer, reader = await connect(), await connect()
    await insert(writer, 1)
    async with asyncio.timeout(DEADLINE):
        assert await count(reader) == 0  # WAL: the uncommitted row is not seen, and no wait
    assert reader._held is None
    await writer.commit()


async def test_the_write_lock_gives_up_like_sqlite_after_the_busy_timeout(
    connect: Callable[[], Awaitable[LoopSQLiteConnection]], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = await connect(), await connect()
    await insert(first, 1)
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 50)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        await insert(second, 2)
    assert second._held is None
    await first.commit()


async def test_a_busy_database_is_waited_for_on_the_thread_not_the_loop(
    connect: Callable[[], Awaitable[LoopSQLiteConnection]], foreign_writer: sqlite3.Connection
) -> None:
    """Another process writes: our statement finds SQLITE_BUSY at once (busy_timeout 0 on the
    loop), goes to the thread with the long timeout, and the loop stays free meanwhile."""
    connection = await connect()
    foreign_writer.execute("BEGIN IMMEDIATE")
    foreign_writer.execute("INSERT INTO t (n) VALUES (100)")
    blocked = asyncio.create_task(insert(connection, 1))
    await until(lambda: connection._queued == 1, "the statement went to the thread")
    # The loop is free: other work runs while the statement waits on the thread.
    ticked = asyncio.Event()
    asyncio.get_running_loop().call_soon(ticked.set)
    async with asyncio.timeout(DEADLINE):
        await ticked.wait()
    assert not blocked.done()
    # Calls made while something waits on the thread queue behind it (order is kept).
    later = asyncio.create_task(connection._execute(threading.get_ident))
    await until(lambda: connection._queued == 2, "the later call queued behind it")
    foreign_writer.commit()
    async with asyncio.timeout(DEADLINE):
        await blocked
        assert await later == connection._thread.ident
    assert connection._queued == 0
    # Back on the loop, with busy_timeout 0 again.
    assert await connection._execute(threading.get_ident) == threading.get_ident()
    cursor = await connection.cursor()
    await cursor.execute("PRAGMA busy_timeout")
    assert await cursor.fetchone() == (0,)
    await connection.commit()
    assert await count(connection) == 2


async def test_a_cancelled_wait_keeps_the_thread_s_turn_until_the_thread_is_done(
    connect: Callable[[], Awaitable[LoopSQLiteConnection]],
    foreign_writer: sqlite3.Connection,
    database: str,
) -> None:
    """Cancelling the task does not stop the thread: until the statement there has finished,
    the loop must not use the connection, so the count of queued calls stays up."""
    connection = await connect()
    foreign_writer.execute("BEGIN IMMEDIATE")
    blocked = asyncio.create_task(insert(connection, 1))
    await until(lambda: connection._queued == 1, "the statement went to the thread")
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    assert connection._queued == 1  # the thread still runs it
    meanwhile = asyncio.create_task(connection._execute(threading.get_ident))
    await until(lambda: connection._queued == 2, "a new call queued for the thread")
    foreign_writer.rollback()
    async with asyncio.timeout(DEADLINE):
        assert await meanwhile == connection._thread.ident
    await until(lambda: connection._queued == 0, "the thread finished both")
    # The connection is usable, and once its transaction ends the lock is free for others.
    await connection.rollback()
    assert not _write_lock(os.path.realpath(database)).locked()
    await insert(connection, 2)
    await connection.commit()
    assert await count(connection) == 1
