"""Forwards go through the outbox like sends and replies: once, with bare recipient addresses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.bitrix24 import Bitrix24Client, ClientConfig
from bot.mail.compose import ValidEmail
from bot.mail.forwarding import forward_subject
from bot.store.crypto import SecretBox
from tests.fakes.bitrix24_portal import FORWARD, SEND, FakePortal
from tests.mail.test_delivery import ALICE, Setup, linked, run_until


@pytest.fixture
async def client() -> AsyncIterator[Bitrix24Client]:
    config = ClientConfig(
        limiter_enabled=False, read_timeout=0.3, transport_retries=0, portal_request_limit=0.5
    )
    async with Bitrix24Client(config=config) as c:
        yield c


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([SecretStr(Fernet.generate_key().decode())])


def named_email() -> ValidEmail:
    return ValidEmail(
        sender="Alice <alice@corp.example>",
        to=["Bob Stone <bob@client.example>"],
        cc=['"Doe, Jane" <jane@client.example>'],
        bcc=["audit@corp.example"],
        subject="Fwd: Contract",
        body_html="<p>See below</p>",
        body_source=None,
    )


async def test_forward_is_delivered_once_when_the_first_attempt_times_out(
    engine: AsyncEngine, portal: FakePortal, client: Bitrix24Client, box: SecretBox
) -> None:
    """The portal forwards but answers late; the retry (same key) is replayed, not re-sent."""
    setup = Setup(engine, box, client)
    await linked(setup, portal)
    original = portal.add_message(3, subject="Contract", from_="carol@client.example")
    row, _ = await setup.sending.submit(
        ALICE,
        named_email(),
        submission_key="fwd-1",
        result_channel="C1",
        forward_message_id=original,
    )
    assert (row.kind, row.forward_message_id) == ("forward", original)
    portal.set_latency(0.6, phase="after", methods=[FORWARD])

    def healed() -> bool:
        if portal.delivered:
            portal.set_latency(0, phase="after")
        return any(r.replayed for r in portal.requests)

    await run_until(setup.worker(), healed)
    stored = await setup.outbox.get(row.id)
    assert stored is not None and stored.status == "sent"
    (sent,) = portal.delivered
    assert (sent.method, sent.forward_message_id, sent.idempotency_key) == (
        FORWARD,
        original,
        row.id,
    )
    forwards = [r for r in portal.requests if r.method_name == FORWARD]
    assert len(forwards) == 2 and forwards[1].replayed


async def test_the_portal_gets_bare_addresses_in_to_cc_and_bcc(
    engine: AsyncEngine, portal: FakePortal, client: Bitrix24Client, box: SecretBox
) -> None:
    """The documented payload: arrays of e-mail addresses; `from` is the picked sender."""
    setup = Setup(engine, box, client)
    await linked(setup, portal)
    original = portal.add_message(3, subject="Contract", from_="carol@client.example")
    await setup.sending.submit(
        ALICE,
        named_email(),
        submission_key="fwd-2",
        result_channel="C1",
        forward_message_id=original,
    )
    await setup.sending.submit(ALICE, named_email(), submission_key="send-2", result_channel="C1")
    await run_until(setup.worker(), lambda: len(portal.delivered) == 2)
    bodies = {r.method_name: r.json for r in portal.requests if r.status == 200}
    assert bodies[FORWARD] == {
        "from": "Alice <alice@corp.example>",
        "to": ["bob@client.example"],
        "cc": ["jane@client.example"],
        "bcc": ["audit@corp.example"],
        "subject": "Fwd: Contract",
        "body": "<p>See below</p>",
        "forwardMessageId": original,
    }
    assert bodies[SEND]["to"] == ["bob@client.example"]
    # Our own texts keep the names.
    history = await setup.sending.history(ALICE)
    assert {tuple(e.to_addrs) for e in history} == {("Bob Stone <bob@client.example>",)}


async def test_a_missing_email_fails_the_forward_for_good(
    engine: AsyncEngine, portal: FakePortal, client: Bitrix24Client, box: SecretBox
) -> None:
    """MESSAGE_FORWARD_FAILED is not retried: the status says Bitrix24 could not forward it."""
    setup = Setup(engine, box, client)
    await linked(setup, portal)
    row, _ = await setup.sending.submit(
        ALICE,
        named_email(),
        submission_key="fwd-3",
        result_channel="C1",
        forward_message_id=987_654,
    )
    worker = setup.worker()

    async def failed() -> bool:
        stored = await setup.outbox.get(row.id)
        return stored is not None and stored.status == "failed"

    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(10):
            while not await failed():
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        setup.wakeup.notify()
        await task
    stored = await setup.outbox.get(row.id)
    assert stored is not None and stored.error_code == "forward_failed"
    assert portal.delivered == []


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Contract", "Fwd: Contract"),
        ("Fwd: Contract", "Fwd: Contract"),
        ("FW: fwd[2]: Fwd(3) : Contract", "Fwd: Contract"),
        ("Re: Contract", "Fwd: Re: Contract"),
        ("  ", "Fwd:"),
        ("Fwdx: Contract", "Fwd: Fwdx: Contract"),
    ],
)
def test_forward_subject_never_doubles_the_prefix(subject: str, expected: str) -> None:
    assert forward_subject(subject) == expected
