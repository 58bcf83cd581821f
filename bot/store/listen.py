"""PostgreSQL LISTEN/NOTIFY: wakes workers in other processes the moment an e-mail is queued.

The NOTIFY is sent inside the transaction that queues the row, so PostgreSQL delivers it on
commit and never before the row is visible. A listener that loses its connection reconnects;
the worker's idle poll covers the gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "b24mail_outbox"


async def _until_stopped_or_dropped(connection: Any, stop: asyncio.Event) -> None:
    closed = asyncio.Event()
    connection.add_termination_listener(lambda *_args: closed.set())
    stopping = asyncio.create_task(stop.wait())
    dropped = asyncio.create_task(closed.wait())
    await asyncio.wait({stopping, dropped}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    dropped.cancel()


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """The plain libpq URL asyncpg takes, from SQLAlchemy's postgresql+asyncpg:// form."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def listen(
    dsn: str,
    channel: str,
    on_notify: Callable[[], None],
    stop: asyncio.Event,
    *,
    reconnect_delay: float = 1.0,
) -> None:
    """Call `on_notify` for every NOTIFY on `channel` until `stop` is set."""
    while not stop.is_set():
        connection: Any = None
        try:
            connection = await asyncpg.connect(dsn, timeout=10)
            await connection.add_listener(channel, lambda *_args: on_notify())
            # A NOTIFY sent while we were away is lost: look for work once on (re)connect.
            on_notify()
            await _until_stopped_or_dropped(connection, stop)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("LISTEN %s: connection failed (%s); retrying", channel, type(exc).__name__)
        finally:
            if connection is not None and not connection.is_closed():
                await connection.close()
        if not stop.is_set():
            await asyncio.sleep(reconnect_delay)
