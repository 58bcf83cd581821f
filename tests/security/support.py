"""Payload builders and probes shared by the security tests."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.slack import ids
from bot.store.base import Base
from tests.fakes.bitrix24_portal import FakePortal, FakeUser
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import rich_text_input, text_input, view_submission
from tests.support.app import RunningApp

ALICE = SlackUser(team_id="T0001", user_id="U0001")
SENDERS = [("Alice Smith", "alice@corp.example")]


def connect_payload(url: str, **who: Any) -> dict[str, Any]:
    """The connect modal submitted with `url` pasted in."""
    return view_submission(
        callback_id=ids.CONNECT_VIEW,
        values={ids.CONNECT_URL_BLOCK: {ids.CONNECT_URL_ACTION: text_input(url)}},
        private_metadata=json.dumps({"channel_id": "C0001"}),
        **who,
    )


def compose_values(
    *,
    to: str = "bob@client.example",
    cc: str | None = None,
    bcc: str | None = None,
    subject: str = "Quarterly report",
    body: str = "Hello Bob",
    sender: str = "alice@corp.example",
) -> dict[str, Any]:
    return {
        ids.FROM_BLOCK: {
            ids.FROM_ACTION: {"type": "static_select", "selected_option": {"value": sender}}
        },
        ids.TO_BLOCK: {ids.ADDRESSES_ACTION: text_input(to)},
        ids.CC_BLOCK: {ids.ADDRESSES_ACTION: text_input(cc)},
        ids.BCC_BLOCK: {ids.ADDRESSES_ACTION: text_input(bcc)},
        ids.SUBJECT_BLOCK: {ids.SUBJECT_ACTION: text_input(subject)},
        ids.BODY_BLOCK: {ids.BODY_ACTION: rich_text_input(body)},
        ids.POST_TO_BLOCK: {
            ids.POST_TO_ACTION: {"type": "conversations_select", "selected_conversation": "C0001"}
        },
    }


def compose_payload(values: dict[str, Any] | None = None, **who: Any) -> dict[str, Any]:
    """The compose modal submitted; `who` is user_id/team_id/enterprise_id/view_id."""
    return view_submission(
        callback_id=ids.COMPOSE_VIEW,
        values=values or compose_values(),
        private_metadata=json.dumps({"channel_id": "C0001"}),
        **who,
    )


async def link(
    app: RunningApp, portal: FakePortal, user: SlackUser = ALICE, *, b24_id: int = 5
) -> FakeUser:
    """Link `user` to a new portal user through the use case (the fake portal is on loopback)."""
    b24 = portal.add_user(b24_id, senders=SENDERS)
    await app.services.links.connect(user, b24.webhook_url)
    return b24


async def count_rows(engine: AsyncEngine) -> dict[str, int]:
    counts = {}
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            counts[table.name] = int(
                await connection.scalar(select(func.count()).select_from(table)) or 0
            )
    return counts


async def message_saying(slack: FakeSlack, text: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The status message (posted or updated) once its blocks contain `text`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for (channel, ts), message in slack.messages.items():
            if text in json.dumps(message.get("blocks")):
                return {**message, "channel": channel, "ts": ts}
        await asyncio.sleep(0.02)
    raise AssertionError(f"no message saying {text!r}")


class Trap:
    """A listening socket on loopback that must never be connected to."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    def connections(self) -> int:
        """How many connections arrived (each is accepted and closed)."""
        count = 0
        while True:
            try:
                conn, _addr = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Trap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
