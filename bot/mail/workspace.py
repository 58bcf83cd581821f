"""A workspace leaves: the app was uninstalled, or some of its tokens were revoked.

Uninstalled: everything b24mail keeps about the workspace goes, in one transaction: its
installation (OAuth mode), its users' links (webhooks), e-mail cards, preferences, its e-mail
policy and its audit log. E-mails still queued then fail as `not_linked` (kept in history,
never audited: they did not leave).

Tokens revoked: only the installation rows of the revoked tokens' owners go (the bot's, or the
users'); the workspace's links stay until it uninstalls the app.

Both are idempotent: Slack delivers an event again when it was not answered.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bot.store.workspace import WorkspaceRepository

log = logging.getLogger(__name__)


class WorkspaceRemoval:
    def __init__(self, rows: WorkspaceRepository) -> None:
        self._rows = rows

    async def app_uninstalled(
        self, *, enterprise_id: str | None, team_id: str | None, org_wide: bool
    ) -> None:
        team = None if org_wide else team_id
        if team is None and not enterprise_id:
            log.warning("app_uninstalled without a workspace or org id: nothing removed")
            return
        removed = await self._rows.delete_workspace(enterprise_id=enterprise_id, team_id=team)
        log.info(
            "app uninstalled from enterprise=%s team=%s: removed its installation, %d link(s), "
            "%d card(s), %d preference row(s), %d policy, %d audit record(s), "
            "%d draft(s)/signature(s)/template(s)",
            enterprise_id,
            team or "(whole org)",
            removed.links,
            removed.cards,
            removed.preferences,
            removed.policies,
            removed.audit_records,
            removed.writing,
        )

    async def tokens_revoked(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        org_wide: bool,
        tokens: Mapping[str, Any],
    ) -> None:
        if not self._rows.keeps_installations:
            log.info("tokens revoked in team=%s (single-workspace mode: nothing stored)", team_id)
            return
        team = None if org_wide else team_id
        users = [str(u) for u in tokens.get("oauth") or [] if u]
        bot = any(tokens.get("bot") or [])
        await self._rows.delete_tokens(
            enterprise_id=enterprise_id, team_id=team, user_ids=users, bot=bot
        )
        log.info(
            "tokens revoked in enterprise=%s team=%s: %d user installation(s), bot %s",
            enterprise_id,
            team or "(whole org)",
            len(users),
            "removed" if bot else "kept",
        )
