"""Undo against claiming workers: every e-mail ends either cancelled and never claimed, or
claimed (sent) and the undo refused — never both, never neither — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.identity import SlackUser
from bot.store.base import utcnow
from bot.store.db import create_session_factory
from bot.store.outbox import NewEmail, OutboxRepository, OutboxStatus
from tests.support.processes import ROOT

ALICE = SlackUser(team_id="T0001", user_id="U0001")


def new_email(n: int, *, due_in: timedelta) -> NewEmail:
    return NewEmail(
        submission_key=f"race-{n}-{random.random()}",
        user=ALICE,
        sender="Alice <alice@corp.example>",
        to=["bob@client.example"],
        subject=f"Race {n}",
        body_html="<p>hi</p>",
        result_channel="C0001",
        deadline=utcnow() + timedelta(minutes=5),
        not_before=utcnow() + due_in,
    )


async def test_undo_and_claim_at_the_same_instant_exactly_one_wins(engine: AsyncEngine) -> None:
    """The row is due; a claim and an undo are issued together, 150 times over."""
    outbox = OutboxRepository(sessions=create_session_factory(engine))
    outcomes: Counter[str] = Counter()
    for n in range(150):
        row, _ = await outbox.enqueue(new_email(n, due_in=timedelta(0)))
        claim = outbox.claim_due(owner="w1", lease=timedelta(seconds=60), limit=1)
        cancel = outbox.cancel(row.id, ALICE)
        first, second = (claim, cancel) if n % 2 else (cancel, claim)
        results = await asyncio.gather(first, second)
        claimed_rows, cancelled = (results[0], results[1]) if n % 2 else (results[1], results[0])
        assert isinstance(claimed_rows, list)
        claimed = any(r.id == row.id for r in claimed_rows)
        assert claimed != bool(cancelled), f"round {n}: claimed={claimed} cancelled={cancelled}"
        stored = await outbox.get(row.id)
        assert stored is not None
        assert stored.status == (OutboxStatus.SENDING if claimed else OutboxStatus.CANCELLED)
        outcomes["claimed" if claimed else "cancelled"] += 1
        if claimed:
            assert await outbox.mark_sent(row.id, owner="w1")
    assert sum(outcomes.values()) == 150


async def test_undo_within_the_window_at_its_end_and_after_it(engine: AsyncEngine) -> None:
    """At t=0 undo wins; after the window a worker has it and undo is refused; a cancelled row
    is never claimed afterwards, however long one waits."""
    outbox = OutboxRepository(sessions=create_session_factory(engine))
    early, _ = await outbox.enqueue(new_email(1, due_in=timedelta(seconds=30)))
    assert await outbox.cancel(early.id, ALICE)
    later = utcnow() + timedelta(minutes=1)
    assert await outbox.claim_due(owner="w", lease=timedelta(seconds=5), limit=5, now=later) == []

    late, _ = await outbox.enqueue(new_email(2, due_in=timedelta(seconds=30)))
    claimed = await outbox.claim_due(
        owner="w", lease=timedelta(seconds=5), limit=5, now=utcnow() + timedelta(seconds=31)
    )
    assert [r.id for r in claimed] == [late.id]
    assert not await outbox.cancel(late.id, ALICE)  # too late: a worker has it
    assert (await outbox.get(late.id)).status == OutboxStatus.SENDING  # type: ignore[union-attr]

    # Not due yet: no claim, so the last instant of the window still belongs to Undo.
    edge, _ = await outbox.enqueue(new_email(3, due_in=timedelta(seconds=30)))
    assert edge.not_before is not None
    just_before = edge.not_before - timedelta(microseconds=1)
    assert (
        await outbox.claim_due(owner="w", lease=timedelta(seconds=5), limit=5, now=just_before)
        == []
    )
    assert await outbox.cancel(edge.id, ALICE)

    # Someone else's click never cancels.
    other, _ = await outbox.enqueue(new_email(4, due_in=timedelta(seconds=30)))
    assert not await outbox.cancel(other.id, SlackUser(team_id="T0001", user_id="UMALLORY"))
    assert (await outbox.get(other.id)).status == OutboxStatus.QUEUED  # type: ignore[union-attr]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_undo_races_three_worker_processes_on_postgres(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    """Three claiming OS processes; e-mails are undone before, around (±20 ms) and after their
    due instant. Every e-mail is claimed once or cancelled, never both, and the undo's answer
    says which."""
    outbox = OutboxRepository(sessions=create_session_factory(engine))
    stop = tmp_path / "stop"
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.claimers", database_url, f"p{i}", str(stop)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(3)
    ]
    answers: dict[str, bool] = {}
    try:
        await asyncio.sleep(1.0)  # let them start claiming (an empty queue)
        for n in range(90):
            row, _ = await outbox.enqueue(new_email(n, due_in=timedelta(milliseconds=40)))
            # A third at once (before the due instant), a third around it (the race proper),
            # a third well after it: whatever the machine's speed, both outcomes occur.
            delay = (0.0, random.uniform(0.02, 0.06), 0.15)[n % 3]
            await asyncio.sleep(delay)
            answers[row.id] = await outbox.cancel(row.id, ALICE)
        await asyncio.sleep(0.5)
    finally:
        stop.touch()
        outputs = []
        for process in workers:
            try:
                out, err = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            assert process.returncode == 0, err.decode(errors="replace")
            outputs.append(out.decode())
    claims = Counter(line for out in outputs for line in out.split())
    assert all(count == 1 for count in claims.values()), "an e-mail was claimed twice"
    for email_id, cancelled in answers.items():
        stored = await outbox.get(email_id)
        assert stored is not None
        if cancelled:
            assert email_id not in claims
            assert stored.status == OutboxStatus.CANCELLED
        else:
            assert email_id in claims
            assert stored.status == OutboxStatus.SENT
    # The race really happened both ways (undo before the due instant wins, after it loses).
    assert 0 < sum(answers.values()) < len(answers)
