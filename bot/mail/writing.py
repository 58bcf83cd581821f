"""Drafts, signatures and templates: what a user keeps to write e-mails faster."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.store.base import utcnow
from bot.store.models import Draft, Template
from bot.store.writing import WritingRepository

log = logging.getLogger(__name__)

TEMPLATE_NAME_MAX = 75
TEMPLATES_MAX = 50  # a static_select shows at most 100 options; 50 stay readable


class DraftNotFound(MailError):
    """That draft is gone: sent, discarded, or older than the retention period."""

    code = "draft_not_found"


class TemplateNotFound(MailError):
    """That template is gone."""

    code = "template_not_found"


class WritingService:
    def __init__(self, *, repository: WritingRepository, draft_retention: timedelta) -> None:
        self._repository = repository
        self.draft_retention = draft_retention

    # --- drafts -----------------------------------------------------------------------------

    async def keep_draft(
        self, user: SlackUser, content: Mapping[str, Any], *, draft_id: str | None
    ) -> str | None:
        """Keep what a closed modal held; None (nothing kept) when nothing was typed."""
        if not has_content(content):
            return None
        saved = await self._repository.save_draft(user, dict(content), draft_id=draft_id)
        log.info("draft kept draft=%s user=%s", saved, user.user_id)
        return saved

    async def drafts(self, user: SlackUser) -> list[tuple[Draft, dict[str, Any]]]:
        return await self._repository.drafts(user)

    async def last_draft(self, user: SlackUser) -> tuple[Draft, dict[str, Any]] | None:
        """The newest draft still to offer (not set aside with Start a new e-mail)."""
        found = await self._repository.drafts(user, limit=1, offered_only=True)
        return found[0] if found else None

    async def set_aside(self, user: SlackUser, draft_id: str) -> None:
        """Start a new e-mail instead: stop offering the draft; it stays in /b24mail drafts."""
        await self._repository.dismiss_draft(user, draft_id)

    async def draft(self, user: SlackUser, draft_id: str) -> dict[str, Any]:
        content = await self._repository.draft(user, draft_id)
        if content is None:
            raise DraftNotFound()
        return content

    async def discard(self, user: SlackUser, draft_id: str | None) -> bool:
        """Delete a draft (after sending it, or on Discard); False when it was already gone."""
        if not draft_id:
            return False
        return await self._repository.delete_draft(user, draft_id)

    async def prune(self) -> int:
        """Delete drafts older than the retention period (B24MAIL_DRAFT_DAYS)."""
        count = await self._repository.prune_drafts(older_than=utcnow() - self.draft_retention)
        if count:
            log.info("pruned %d draft(s) older than %s", count, self.draft_retention)
        return count

    # --- signatures -------------------------------------------------------------------------

    async def signatures(self, user: SlackUser) -> dict[str, dict[str, Any]]:
        return await self._repository.signatures(user)

    async def signature_for(
        self, user: SlackUser, sender_email: str | None
    ) -> dict[str, Any] | None:
        if not sender_email:
            return None
        return (await self._repository.signatures(user)).get(sender_email.lower())

    async def set_signature(
        self, user: SlackUser, sender_email: str, body: dict[str, Any] | None
    ) -> None:
        await self._repository.set_signature(user, sender_email, body)

    # --- templates --------------------------------------------------------------------------

    async def templates(self, user: SlackUser) -> list[Template]:
        return await self._repository.templates(user)

    async def template(self, user: SlackUser, template_id: int) -> Template:
        found = await self._repository.template(user, template_id)
        if found is None:
            raise TemplateNotFound()
        return found

    async def add_template(
        self, user: SlackUser, *, name: str, subject: str, body: dict[str, Any]
    ) -> str | None:
        """Save a template; the problem's wording code when it cannot be saved, else None."""
        name = " ".join(name.split())
        if not name:
            return "template_name_required"
        if len(name) > TEMPLATE_NAME_MAX:
            return "template_name_too_long"
        if len(await self._repository.templates(user)) >= TEMPLATES_MAX:
            return "template_limit"
        if not await self._repository.add_template(user, name=name, subject=subject, body=body):
            return "template_name_taken"
        return None

    async def delete_template(self, user: SlackUser, template_id: int) -> None:
        if not await self._repository.delete_template(user, template_id):
            raise TemplateNotFound()


def has_content(content: Mapping[str, Any]) -> bool:
    """A draft is worth keeping when a recipient, subject or visible body text was typed."""
    if any(str(content.get(key) or "").strip() for key in ("to", "cc", "bcc", "subject")):
        return True
    return bool(content.get("body_has_text"))
