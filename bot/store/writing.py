"""Drafts, signatures and templates of one Slack user; every method takes the full SlackUser.

Like links, rows are reached by the verified Slack identity plus an id, never by an id alone,
so one user cannot open, change or delete another user's draft or template.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from bot.identity import SlackUser
from bot.store.base import utcnow
from bot.store.crypto import SecretBox
from bot.store.db import SessionFactory
from bot.store.models import Draft, Signature, Template

DRAFTS_KEPT = 20  # per user; the oldest beyond this go when a new one is saved


class WritingRepository:
    def __init__(self, *, sessions: SessionFactory, box: SecretBox) -> None:
        self._sessions = sessions
        self._box = box

    # --- drafts -----------------------------------------------------------------------------

    async def save_draft(
        self, user: SlackUser, content: dict[str, Any], *, draft_id: str | None = None
    ) -> str:
        """Store (or overwrite the user's own `draft_id`) a draft; its content is encrypted."""
        now = utcnow()
        sealed = self._box.encrypt(json.dumps(content, ensure_ascii=False))
        async with self._sessions.begin() as session:
            if draft_id is not None:
                result = await session.execute(
                    update(Draft)
                    .where(Draft.id == draft_id, *_owned(Draft, user))
                    .values(content_encrypted=sealed, updated_at=now)
                )
                if getattr(result, "rowcount", 0):
                    return draft_id
            draft_id = str(uuid.uuid4())
            session.add(
                Draft(
                    id=draft_id,
                    enterprise_id=user.enterprise_id,
                    team_id=user.team_id,
                    slack_user_id=user.user_id,
                    content_encrypted=sealed,
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.flush()
            old = (
                select(Draft.id)
                .where(*_owned(Draft, user))
                .order_by(Draft.updated_at.desc())
                .offset(DRAFTS_KEPT)
            )
            stale = list((await session.scalars(old)).all())
            if stale:
                await session.execute(delete(Draft).where(Draft.id.in_(stale)))
        return draft_id

    async def drafts(
        self, user: SlackUser, *, limit: int = 10, offered_only: bool = False
    ) -> list[tuple[Draft, dict[str, Any]]]:
        """The user's drafts, newest first, each with its decrypted content; `offered_only`:
        without those the user chose to leave for now (Start a new e-mail)."""
        where = [*_owned(Draft, user)]
        if offered_only:
            where.append(Draft.dismissed.is_(False))
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Draft).where(*where).order_by(Draft.updated_at.desc()).limit(limit)
            )
            found = list(rows.all())
        return [(row, self._open(row)) for row in found]

    async def draft(self, user: SlackUser, draft_id: str) -> dict[str, Any] | None:
        async with self._sessions() as session:
            row = await session.scalar(
                select(Draft).where(Draft.id == draft_id, *_owned(Draft, user))
            )
        return self._open(row) if row is not None else None

    async def dismiss_draft(self, user: SlackUser, draft_id: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(Draft)
                .where(Draft.id == draft_id, *_owned(Draft, user))
                .values(dismissed=True)
            )

    async def delete_draft(self, user: SlackUser, draft_id: str) -> bool:
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(Draft).where(Draft.id == draft_id, *_owned(Draft, user))
            )
        return bool(getattr(result, "rowcount", 0))

    async def prune_drafts(self, *, older_than: datetime) -> int:
        """Delete every draft untouched since `older_than` (the worker's housekeeping)."""
        async with self._sessions.begin() as session:
            result = await session.execute(delete(Draft).where(Draft.updated_at < older_than))
        return int(getattr(result, "rowcount", 0) or 0)

    async def rotate_keys(self) -> int:
        """Re-encrypt every draft with the first key (`b24mail rotate-keys`)."""
        count = 0
        async with self._sessions.begin() as session:
            for row in (await session.scalars(select(Draft))).all():
                row.content_encrypted = self._box.rotate(row.content_encrypted)
                count += 1
        return count

    def _open(self, row: Draft) -> dict[str, Any]:
        content = json.loads(self._box.decrypt(row.content_encrypted).get_secret_value())
        return content if isinstance(content, dict) else {}

    # --- signatures -------------------------------------------------------------------------

    async def signatures(self, user: SlackUser) -> dict[str, dict[str, Any]]:
        """sender e-mail (lower case) → its signature's rich text."""
        async with self._sessions() as session:
            rows = await session.scalars(select(Signature).where(*_owned(Signature, user)))
            return {row.sender_email: dict(row.body) for row in rows.all()}

    async def set_signature(
        self, user: SlackUser, sender_email: str, body: dict[str, Any] | None
    ) -> None:
        """Set, replace or (body None) remove the signature of one sender address."""
        sender = sender_email.lower()
        where = (*_owned(Signature, user), Signature.sender_email == sender)
        async with self._sessions.begin() as session:
            await session.execute(delete(Signature).where(*where))
            if body is not None:
                session.add(
                    Signature(
                        enterprise_id=user.enterprise_id,
                        team_id=user.team_id,
                        slack_user_id=user.user_id,
                        sender_email=sender,
                        body=body,
                        updated_at=utcnow(),
                    )
                )

    # --- templates --------------------------------------------------------------------------

    async def templates(self, user: SlackUser) -> list[Template]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Template).where(*_owned(Template, user)).order_by(func.lower(Template.name))
            )
            return list(rows.all())

    async def template(self, user: SlackUser, template_id: int) -> Template | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(Template).where(Template.id == template_id, *_owned(Template, user))
            )

    async def add_template(
        self, user: SlackUser, *, name: str, subject: str, body: dict[str, Any]
    ) -> bool:
        """Save a template; False when the user already has one of that name."""
        try:
            async with self._sessions.begin() as session:
                session.add(
                    Template(
                        enterprise_id=user.enterprise_id,
                        team_id=user.team_id,
                        slack_user_id=user.user_id,
                        name=name,
                        subject=subject,
                        body=body,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            return False
        return True

    async def delete_template(self, user: SlackUser, template_id: int) -> bool:
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(Template).where(Template.id == template_id, *_owned(Template, user))
            )
        return bool(getattr(result, "rowcount", 0))


def _owned(
    model: type[Draft] | type[Signature] | type[Template], user: SlackUser
) -> tuple[Any, ...]:
    return (
        model.enterprise_id == user.enterprise_id,
        model.team_id == user.team_id,
        model.slack_user_id == user.user_id,
    )
