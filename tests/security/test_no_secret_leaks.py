"""No secret (webhook code, Slack token, signing secret, Fernet keys) leaves b24mail, across every flow.

One scenario per database drives every flow through the real endpoint with the worker running:
connect (failing, then working), status, compose and send (sent, failed, retried by the portal,
retried by the button), edit and resend, history, a forged request carrying the webhook,
an expired webhook, and disconnect. The tests then search each place a secret could end up.
(`/b24mail inbox` and the reply shortcut did not exist when these tests were written.)
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.slack import ids
from bot.store.base import Base
from bot.store.db import create_engine
from bot.store.migrations import upgrade
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import block_actions, interactive_body, sign
from tests.security.support import (
    ALICE,
    compose_payload,
    compose_values,
    connect_payload,
    message_saying,
)
from tests.support.app import SIGNING_SECRET, RunningApp, running_app
from tests.support.databases import sqlite_url

LOGGERS = [
    "",
    "bot",
    "bot.slack.bolt",
    "slack_bolt",
    "slack_sdk",
    "httpx",
    "httpcore",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "asyncio",
]


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        parts = [record.name, record.getMessage(), repr(record.args)]
        if record.exc_info:
            parts.append(self._formatter.formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
        self.lines.append(" ".join(parts))


@dataclass
class Evidence:
    secrets: dict[str, str]
    logs: list[str] = field(default_factory=list)
    database: list[str] = field(default_factory=list)
    database_file: bytes = b""
    to_slack: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    backend: str = ""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def evidence(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    slack_server: FakeSlack,
    portal_server: FakePortal,
) -> Evidence:
    """Run every flow once on this database and collect everything b24mail wrote or sent."""
    if request.param == "sqlite":
        url = sqlite_url(tmp_path_factory.mktemp("leaks") / "b24mail.db")
    else:
        url = str(request.getfixturevalue("postgres_url"))
    slack_server.reset()
    portal_server.reset_faults()
    portal_server.clear()
    capture = _Capture()
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    root = logging.getLogger()
    root.addHandler(capture)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        found = asyncio.run(_scenario(url, slack_server, portal_server))
    finally:
        root.removeHandler(capture)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        portal_server.reset_faults()
        slack_server.clear_faults()
    found.logs = capture.lines
    return found


async def _scenario(url: str, slack: FakeSlack, portal: FakePortal) -> Evidence:
    engine = create_engine(url)
    if url.startswith("sqlite"):
        await upgrade(engine)
    else:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    keys = [Fernet.generate_key().decode(), Fernet.generate_key().decode()]
    b24 = portal.add_user(71, senders=[("Alice Smith", "alice@corp.example")])
    found = Evidence(
        secrets={
            "webhook code": b24.code,
            "slack token": slack.token,
            "signing secret": SIGNING_SECRET,
            "fernet key 1": keys[0],
            "fernet key 2": keys[1],
        },
        backend=engine.url.get_backend_name(),
    )
    try:
        async with running_app(
            engine=engine, slack=slack, worker=True, b24mail_secret_keys=",".join(keys)
        ) as app:
            await _every_flow(app, slack, portal, b24.webhook_url, b24.code, found)
        await _dump(engine, found)
    finally:
        await engine.dispose()
    found.to_slack = [json.dumps([c.method, c.args, c.response]) for c in slack.calls]
    found.to_slack += [json.dumps([r.url, r.json]) for r in slack.responses]
    found.to_slack += [json.dumps(v) for v in slack.views.values()]
    return found


async def _every_flow(
    app: RunningApp, slack: FakeSlack, portal: FakePortal, webhook: str, code: str, found: Evidence
) -> None:
    async def interact(payload: dict[str, Any]) -> None:
        response = await app.interactive(payload)
        assert response.status_code == 200, response.text
        found.answers.append(response.text)

    async def command(text: str) -> None:
        response = await app.command(text)
        assert response.status_code == 200, response.text
        found.answers.append(response.text)

    base = webhook.split("/rest/")[0]
    # Connect, failing in four ways that each carry the real code, then working.
    for bad in (
        f"{base}/rest/71/{code}x/",
        f"{base}/rest/71/{code}/one/two/",
        base.replace("://", f"://user:{code}@") + f"/rest/71/{code}/",
        f"{base}/rest/72/{code}/",
    ):
        await interact(connect_payload(bad))
    # A forged request (wrong secret) carrying the webhook must not be logged either.
    forged = interactive_body(connect_payload(webhook))
    headers = sign(forged, signing_secret="not-the-secret")
    found.answers.append(
        (await app.http.post("/slack/events", content=forged, headers=headers)).text
    )
    await interact(connect_payload(webhook))
    await command("status")
    await command("send bob@client.example")
    await slack.await_for("views.open", lambda c: c.ok)
    # Sent at once.
    await interact(compose_payload(compose_values(subject="One"), view_id="V1"))
    await message_saying(slack, "Sent")
    # Failed for good, then the Retry button, then Edit and resend.
    portal.set_send_failure("MESSAGE_SEND_FAILED")
    await interact(compose_payload(compose_values(subject="Two"), view_id="V2"))
    failed = await message_saying(slack, "Not sent")
    row = next(r for r in await app.services.sending.history(ALICE) if r.subject == "Two")
    portal.reset_faults()
    await interact(
        block_actions(
            action_id=ids.EDIT_RESEND_ACTION,
            value=row.id,
            message=failed,
            response_url=slack.response_url("edit"),
        )
    )
    await interact(
        block_actions(
            action_id=ids.RETRY_ACTION,
            value=row.id,
            message=failed,
            response_url=slack.response_url("retry"),
        )
    )
    await portal.await_delivered(2)
    # Server errors, retried by the worker until sent.
    portal.fail_next(2, status=500, methods=["mail.message.send"])
    await interact(compose_payload(compose_values(subject="Three"), view_id="V3"))
    await portal.await_delivered(3)
    # The webhook expires: the send fails with a credentials error.
    portal.expire_webhook(71)
    await interact(compose_payload(compose_values(subject="Four"), view_id="V4"))
    await message_saying(slack, "did not accept the webhook")
    await command("history")
    await command("disconnect")
    await command("status")


async def _dump(engine: AsyncEngine, found: Evidence) -> None:
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in (await connection.execute(select(table))).all():
                found.database.append(f"{table.name} {tuple(row)!r}")
        if found.backend == "sqlite":
            await connection.execute(text("PRAGMA wal_checkpoint(FULL)"))
    if found.backend == "sqlite":
        path = Path(str(engine.url.database))
        found.database_file = b"".join(
            p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists()
        )


def _leaks(secrets: dict[str, str], texts: list[str]) -> list[tuple[str, str]]:
    return [(name, t[:300]) for t in texts for name, secret in secrets.items() if secret in t]


def test_debug_logs_hold_no_secret(evidence: Evidence) -> None:
    """Root, bolt, slack_sdk, httpx and uvicorn at DEBUG: no secret in any message or trace."""
    logged = "\n".join(evidence.logs)
    assert "linked user=U0001" in logged and "queued email=" in logged
    assert "/rest/api/71/***/mail.message.send" in logged  # httpx's request lines, masked
    assert _leaks(evidence.secrets, evidence.logs) == []


def test_database_holds_no_secret(evidence: Evidence) -> None:
    """Every row of every table, and the SQLite file after a checkpoint, hold no secret."""
    dumped = "\n".join(evidence.database)
    assert "outbox" in dumped and "bad_credentials" in dumped
    assert _leaks(evidence.secrets, evidence.database) == []
    if evidence.backend == "sqlite":
        assert b"Three" in evidence.database_file
        for name, secret in evidence.secrets.items():
            assert secret.encode() not in evidence.database_file, name


def test_nothing_sent_to_slack_holds_a_secret(evidence: Evidence) -> None:
    """Every Web API call, response_url post and view shown carries no secret."""
    sent = "\n".join(evidence.to_slack)
    assert "chat.postMessage" in sent and "chat.update" in sent and "views.open" in sent
    assert _leaks(evidence.secrets, evidence.to_slack) == []


def test_no_answer_or_error_message_holds_a_secret(evidence: Evidence) -> None:
    """Acks, inline errors and refusals name what went wrong without echoing a secret."""
    answered = "\n".join(evidence.answers)
    assert "did not accept the webhook" in answered and "Remove the user name" in answered
    assert _leaks(evidence.secrets, evidence.answers) == []
