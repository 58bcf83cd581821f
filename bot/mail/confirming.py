"""E-mails held for their sender's confirmation ("send outside the allowed domains?")."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.identity import SlackUser
from bot.mail.compose import ValidEmail
from bot.store.base import utcnow
from bot.store.confirmations import PendingSendRepository

HOLD_FOR = timedelta(hours=1)


@dataclass(frozen=True, kw_only=True)
class QueueTarget:
    """Where a queued e-mail's result goes, and the submission key that makes it queue once."""

    submission_key: str
    result_channel: str
    result_thread_ts: str | None = None
    reply_to_message_id: int | None = None
    forward_message_id: int | None = None
    send_at: float | None = None  # Send later, as a Unix time (the held payload is JSON)
    draft_id: str | None = None  # the draft the e-mail was written in, deleted once queued

    @property
    def send_time(self) -> datetime | None:
        return datetime.fromtimestamp(self.send_at, UTC) if self.send_at is not None else None


class PendingSends:
    def __init__(self, *, repository: PendingSendRepository, hold_for: timedelta = HOLD_FOR):
        self._repository = repository
        self._hold_for = hold_for

    async def hold(self, user: SlackUser, email: ValidEmail, target: QueueTarget) -> str:
        return await self._repository.hold(user, {"email": asdict(email), "target": asdict(target)})

    async def take(self, key: str, user: SlackUser) -> tuple[ValidEmail, QueueTarget] | None:
        """The held e-mail (once; only its sender's), or None when gone or over an hour old."""
        payload = await self._repository.take(key, user, newer_than=utcnow() - self._hold_for)
        if payload is None:
            return None
        return ValidEmail(**_mapping(payload["email"])), QueueTarget(**_mapping(payload["target"]))

    async def prune(self, *, now: datetime | None = None) -> int:
        return await self._repository.prune(before=(now or utcnow()) - self._hold_for)


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}
