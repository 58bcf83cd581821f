"""The throwaway PostgreSQL server that `make test` starts on a machine without one."""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest

from tests.support.throwaway_postgres import ThrowawayPostgres, server_answers


def test_server_answers_only_where_something_listens() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert server_answers("127.0.0.1", port)
    assert not server_answers("127.0.0.1", port)


@pytest.mark.slow
def test_a_throwaway_server_starts_serves_and_leaves_nothing_behind() -> None:
    """Started in its own temporary directory (as root, too: the package runs it as its own
    user), reached over its Unix socket, and stopped and removed by stop()."""
    server = ThrowawayPostgres()
    url = server.start()
    root = server.directory

    async def use() -> str:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            await connection.execute('CREATE DATABASE "b24mail_throwaway"')
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    try:
        assert asyncio.run(use()).startswith("18.")
    finally:
        server.stop()
    assert not root.exists()
    with pytest.raises(OSError):
        asyncio.run(use())
    server.stop()  # twice is harmless
