"""LISTEN/NOTIFY wakes a worker in another process the moment an e-mail is committed."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.store.base import utcnow
from bot.store.db import create_session_factory
from bot.store.listen import OUTBOX_CHANNEL, asyncpg_dsn, listen
from bot.store.outbox import NewEmail, OutboxRepository


def test_asyncpg_dsn_drops_the_sqlalchemy_driver() -> None:
    assert (
        asyncpg_dsn("postgresql+asyncpg://u:p%40ss@db:5432/app")
        == "postgresql://u:p%40ss@db:5432/app"
    )


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_enqueue_on_one_connection_wakes_a_listener_on_another(engine: AsyncEngine) -> None:
    """The NOTIFY arrives after the commit, carrying the new row's id."""
    woken = asyncio.Event()
    stop = asyncio.Event()
    task = asyncio.create_task(
        listen(
            asyncpg_dsn(engine.url.render_as_string(hide_password=False)),
            OUTBOX_CHANNEL,
            woken.set,
            stop,
        )
    )
    try:
        async with asyncio.timeout(5):
            await woken.wait()  # the listener looks for work once when it connects
        woken.clear()
        outbox = OutboxRepository(sessions=create_session_factory(engine))
        await outbox.enqueue(
            NewEmail(
                submission_key="listen-1",
                user=SlackUser(team_id="T1", user_id="U1"),
                sender="a@corp.example",
                to=["b@client.example"],
                subject="s",
                body_html="<p>b</p>",
                result_channel="C1",
                deadline=utcnow() + timedelta(minutes=1),
            )
        )
        async with asyncio.timeout(2):
            await woken.wait()
    finally:
        stop.set()
        await task
