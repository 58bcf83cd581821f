"""Hostile bodies at the Slack endpoint: too large (declared or streamed), not UTF-8, or signed
with payload keys of a type Slack never sends."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.request_body import MAX_BODY_BYTES
from bot.slack import ids
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import block_actions, interactive_body, sign, view_submission
from tests.support.app import SIGNING_SECRET, RunningApp, running_app


async def _raw_exchange(app: RunningApp, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a request head and body chunks over a bare socket; return what the server answers.

    The body is never finished, so an answer proves the server refused it before reading it
    whole (a server reading it all would wait for the rest until the timeout)."""
    url = urlsplit(app.base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head)
        for chunk in chunks:
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break  # the server refused and closed: its answer is already on the way
        return await asyncio.wait_for(reader.read(4096), timeout=10)
    finally:
        writer.close()


def _head(extra: str) -> bytes:
    return (
        "POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "X-Slack-Request-Timestamp: 1\r\nX-Slack-Signature: v0=00\r\n"
        f"{extra}\r\n"
    ).encode()


async def test_a_declared_50_mb_body_is_refused_with_413_before_a_byte_of_it_is_read(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """Content-Length 50 MB: 413 at once, though not one body byte was sent."""
    async with running_app(engine=engine, slack=slack) as app:
        answer = await _raw_exchange(app, _head(f"Content-Length: {50 * 1024 * 1024}\r\n"), [])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


async def test_a_streamed_chunked_body_is_cut_off_at_the_limit_with_413(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """A chunked body (no declared length) gets 413 once it passes 1 MB, without its end."""
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    count = MAX_BODY_BYTES // len(piece) + 4  # a little over the limit, and never terminated
    async with running_app(engine=engine, slack=slack) as app:
        answer = await _raw_exchange(app, _head("Transfer-Encoding: chunked\r\n"), [chunk] * count)
        # The app still serves.
        health = await app.http.get("/healthz")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert health.status_code == 200


async def test_a_body_just_under_the_limit_is_read_and_checked_as_usual(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """Near the limit but under it: no 413; an unsigned one gets the usual 401."""
    body = "x=" + "a" * (MAX_BODY_BYTES - 10)
    async with running_app(engine=engine, slack=slack) as app:
        unsigned = await app.http.post(
            "/slack/events",
            content=body.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert unsigned.status_code == 401


@pytest.mark.parametrize("signed", [True, False])
async def test_a_body_that_is_not_utf8_gets_400_not_401(
    engine: AsyncEngine, slack: FakeSlack, signed: bool
) -> None:
    """Invalid UTF-8 is a malformed request whether or not it is signed."""
    body = b"payload=%7B%7D\xff\xfe"
    headers = sign(body, signing_secret=SIGNING_SECRET) if signed else {}
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    async with running_app(engine=engine, slack=slack) as app:
        response = await app.http.post("/slack/events", content=body, headers=headers)
    assert response.status_code == 400
    assert "UTF-8" in response.text


def _with(payload: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    return {**payload, key: value}


WRONG: list[tuple[str, Any]] = [
    ("actions", "not a list"),
    ("actions", {"action_id": ids.RETRY_ACTION}),
    ("actions", ["a string"]),
    ("actions", [{"action_id": ["x"]}]),
    ("view", "a string"),
    ("view", ["a", "list"]),
    ("view", {"callback_id": 5, "state": {"values": {}}}),
    ("user", ["U1"]),
    ("user", {"id": ["U1"], "team_id": "T0001"}),
    ("user", 7),
    ("team", ["T0001"]),
    ("team", {"id": {"nested": 1}}),
]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize(("key", "value"), WRONG, ids=[f"{k}={v!r}" for k, v in WRONG])
async def test_a_signed_payload_with_a_key_of_the_wrong_type_gets_400_and_one_warning(
    engine: AsyncEngine, slack: FakeSlack, key: str, value: Any
) -> None:
    """actions/view/user/team of a wrong type: 400 with an error id, one WARNING, no traceback."""
    if key in ("actions",):
        base = block_actions(action_id=ids.RETRY_ACTION, response_url=slack.response_url("x"))
    else:
        base = view_submission(callback_id=ids.COMPOSE_VIEW, values={})
    records = _Records()
    root = logging.getLogger()
    root.addHandler(records)
    try:
        async with running_app(engine=engine, slack=slack) as app:
            response = await app.post_signed(interactive_body(_with(base, key, value)))
    finally:
        root.removeHandler(records)
    assert response.status_code == 400, response.text
    assert "error id" in response.text
    warnings = [r for r in records.records if r.levelno == logging.WARNING]
    errors = [r for r in records.records if r.levelno >= logging.ERROR]
    assert len(warnings) == 1 and not errors, [r.getMessage() for r in warnings + errors]
    assert response.text.split("error id ")[1].rstrip(")") in warnings[0].getMessage()
    assert not any(r.exc_info for r in records.records)
    assert slack.calls == [] and slack.responses == []
