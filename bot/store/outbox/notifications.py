"""The pending Slack status message of each outbox row: claimed, recorded, put off.

Every change of an e-mail's state bumps ``state_version``; a notifier claims rows whose
``notified_version`` is behind, posts or updates the message, and records the version shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update

from bot.store.base import utcnow
from bot.store.db import SessionFactory
from bot.store.models import OutboxEmail
from bot.store.outbox.statements import (
    OutboxConnections,
    claim_statement,
    mark_notified_statement,
)


class StatusNotifications(OutboxConnections):
    """The status-message bookkeeping of the outbox, in prebuilt statements where it is hot."""

    def __init__(self, *, sessions: SessionFactory) -> None:
        super().__init__(sessions=sessions)
        self._notified = _Batcher(self._write_notified)

    async def claim_notifications(
        self, *, lease: timedelta, limit: int, now: datetime | None = None
    ) -> list[OutboxEmail]:
        """Rows whose status message is behind their state; each is held for `lease`."""
        now = now or utcnow()
        async with self._one_statement() as connection:
            statement = claim_statement("notifications", connection.dialect.name == "postgresql")
            result = await connection.execute(
                statement, {"now": now, "until": now + lease, "limit": limit}
            )
            return [OutboxEmail(**row._mapping) for row in result]

    async def mark_notified(
        self,
        email_id: str,
        *,
        version: int,
        channel: str,
        ts: str,
        note: str | None,
    ) -> None:
        """Remember which state the status message shows; newer states stay pending.

        Calls that arrive while an earlier batch is being written are written together, in one
        statement batch and one commit (a notifier records up to a batch of rows at once).
        """
        await self._notified.add(
            {"email_id": email_id, "version": version, "channel": channel, "ts": ts, "note": note}
        )

    async def _write_notified(self, batch: list[dict[str, Any]]) -> None:
        async with self._one_statement() as connection:
            statement = mark_notified_statement(connection.dialect.name == "sqlite")
            await connection.execute(statement, batch if len(batch) > 1 else batch[0])

    async def mark_post_started(self, email_id: str, *, at: datetime) -> None:
        """Record, before posting, that the first status message is about to be posted."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id)
                .values(status_post_started_at=at)
            )

    async def notify_later(self, email_id: str, *, at: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id)
                .values(notify_due_at=at, notify_lease_until=None)
            )

    async def next_notification_at(self) -> datetime | None:
        """When a row behind may be claimed: its due time, or the end of another notifier's
        lease on it (else every other notifier polls without sleeping until the lease ends)."""
        claimable_at = case(
            (
                OutboxEmail.notify_lease_until > OutboxEmail.notify_due_at,
                OutboxEmail.notify_lease_until,
            ),
            else_=OutboxEmail.notify_due_at,
        )
        async with self._sessions() as session:
            due: datetime | None = await session.scalar(
                select(func.min(claimable_at)).where(
                    OutboxEmail.notified_version < OutboxEmail.state_version
                )
            )
        return due


class _Batcher:
    """Writes parameter sets in batches: the first call writes at once; calls that arrive while
    a write is under way wait for it and go together in the next one. Every caller returns once
    its own parameters are written, or raises what that write raised."""

    def __init__(self, write: Callable[[list[dict[str, Any]]], Awaitable[None]]) -> None:
        self._write = write
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, params: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((params, done))
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            self._writer = loop.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._write([params for params, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every caller in the batch
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            except BaseException:  # cancelled (shutdown): so are the callers waiting on it
                for _, done in [*batch, *self._waiting]:
                    done.cancel()
                self._waiting = []
                raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
