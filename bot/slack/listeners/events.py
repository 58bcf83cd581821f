"""Events API: the app was uninstalled from a workspace, or some of its tokens were revoked.

The use case is bot/mail/workspace.py (WorkspaceRemoval). After an uninstall, e-mails still
queued fail as `not_linked` (kept in history); their status messages cannot be posted without
a token, and the notifier gives them up (bot/slack/notifier.py).

Both ack at once and do the (quick, idempotent) deletes before the response, so a failure makes
Slack deliver the event again instead of losing it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt.context.async_context import AsyncBoltContext

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.services import Services

EVENTS = ("app_uninstalled", "tokens_revoked")

Ack = Callable[[], Awaitable[Any]]


async def on_app_uninstalled(ack: Ack, context: AsyncBoltContext, services: Services) -> None:
    await ack()
    await services.workspaces.app_uninstalled(
        enterprise_id=context.enterprise_id,
        team_id=context.team_id,
        org_wide=bool(context.is_enterprise_install),
    )


async def on_tokens_revoked(
    ack: Ack, event: Mapping[str, Any], context: AsyncBoltContext, services: Services
) -> None:
    await ack()
    tokens = event.get("tokens")
    await services.workspaces.tokens_revoked(
        enterprise_id=context.enterprise_id,
        team_id=context.team_id,
        org_wide=bool(context.is_enterprise_install),
        tokens=tokens if isinstance(tokens, Mapping) else {},
    )


def register(app: AsyncApp) -> None:
    listeners = {"app_uninstalled": on_app_uninstalled, "tokens_revoked": on_tokens_revoked}
    for name in EVENTS:  # the manifest subscribes to exactly these (tests/test_manifest.py)
        app.event(name)(listeners[name])
