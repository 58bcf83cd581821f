"""Events API: the app was uninstalled from a workspace, or some of its tokens were revoked.

`app_uninstalled`: everything b24mail keeps about the workspace goes: its installation (OAuth
mode), its users' links (webhooks), e-mail cards and preferences. E-mails still queued then fail
as `not_linked` (kept in history); their status messages cannot be posted without a token, and
the notifier gives them up (bot/slack/notifier.py).

`tokens_revoked`: only the installation data of the revoked tokens' owners goes (the bot's, or
the users'); the workspace's links stay until it uninstalls the app.

Both ack at once and do the (quick, idempotent) deletes before the response, so a failure makes
Slack deliver the event again instead of losing it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.context.async_context import AsyncBoltContext

from bot.store.cards import CardRepository
from bot.store.preferences import PreferenceRepository

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.services import Services

log = logging.getLogger(__name__)

EVENTS = ("app_uninstalled", "tokens_revoked")

Ack = Callable[[], Awaitable[Any]]


class WorkspaceRemoval:
    def __init__(self, services: Services) -> None:
        self._installations = services.installations
        self._links = services.link_repository
        self._cards = CardRepository(sessions=services.sessions)
        self._preferences = PreferenceRepository(sessions=services.sessions)

    async def app_uninstalled(
        self, *, enterprise_id: str | None, team_id: str | None, org_wide: bool
    ) -> None:
        team = None if org_wide else team_id
        if team is None and not enterprise_id:
            log.warning("app_uninstalled without a workspace or org id: nothing removed")
            return
        if self._installations is not None:
            await self._installations.async_delete_all(enterprise_id=enterprise_id, team_id=team)
        ours = enterprise_id or ""  # b24mail's tables key non-Grid workspaces with ""
        links = await self._links.delete_team(enterprise_id=ours, team_id=team)
        cards = await self._cards.delete_team(enterprise_id=ours, team_id=team)
        preferences = await self._preferences.delete_team(enterprise_id=ours, team_id=team)
        log.info(
            "app uninstalled from enterprise=%s team=%s: removed its installation, %d link(s), "
            "%d card(s), %d preference row(s)",
            enterprise_id,
            team or "(whole org)",
            links,
            cards,
            preferences,
        )

    async def tokens_revoked(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        org_wide: bool,
        tokens: Mapping[str, Any],
    ) -> None:
        if self._installations is None:
            log.info("tokens revoked in team=%s (single-workspace mode: nothing stored)", team_id)
            return
        team = None if org_wide else team_id
        users = [str(u) for u in tokens.get("oauth") or [] if u]
        for user_id in users:
            await self._installations.async_delete_installation(
                enterprise_id=enterprise_id, team_id=team, user_id=user_id
            )
        bots = [str(b) for b in tokens.get("bot") or [] if b]
        if bots:
            await self._installations.async_delete_bot(enterprise_id=enterprise_id, team_id=team)
        log.info(
            "tokens revoked in enterprise=%s team=%s: %d user installation(s), bot %s",
            enterprise_id,
            team or "(whole org)",
            len(users),
            "removed" if bots else "kept",
        )


def register(app: AsyncApp, services: Services) -> None:
    removal = WorkspaceRemoval(services)

    async def on_app_uninstalled(ack: Ack, context: AsyncBoltContext) -> None:
        await ack()
        await removal.app_uninstalled(
            enterprise_id=context.enterprise_id,
            team_id=context.team_id,
            org_wide=bool(context.is_enterprise_install),
        )

    async def on_tokens_revoked(
        ack: Ack, event: Mapping[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        tokens = event.get("tokens")
        await removal.tokens_revoked(
            enterprise_id=context.enterprise_id,
            team_id=context.team_id,
            org_wide=bool(context.is_enterprise_install),
            tokens=tokens if isinstance(tokens, Mapping) else {},
        )

    listeners = {"app_uninstalled": on_app_uninstalled, "tokens_revoked": on_tokens_revoked}
    for name in EVENTS:  # the manifest subscribes to exactly these (tests/test_manifest.py)
        app.event(name)(listeners[name])
