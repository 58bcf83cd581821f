"""Is this user one of the workspace's Slack admins or owners? Asked of Slack every time.

The answer authorises policy changes, so it is never cached: a demoted admin loses the right at
their next click. Anything but a clear yes from users.info (an error, a deleted or guest
account, a user of another workspace) is a no.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.identity import SlackUser

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

ADMIN_FLAGS = ("is_admin", "is_owner", "is_primary_owner")


async def is_workspace_admin(client: AsyncWebClient, user: SlackUser) -> bool:
    try:
        # Without include_locale: this is not a profile lookup (bot/slack/language.py), and the
        # tests tell the two apart by it.
        response = await client.users_info(user=user.user_id)
    except (SlackApiError, SlackClientError, OSError) as exc:
        error = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
        log.warning(
            "admin check of user=%s failed (%s): treated as not an admin", user.user_id, error
        )
        return False
    info = response.get("user")
    if not isinstance(info, dict) or info.get("id") != user.user_id:
        return False
    if info.get("deleted") or info.get("is_restricted") or info.get("is_ultra_restricted"):
        return False
    # On Enterprise Grid a user's home team may differ from the workspace acting here; the
    # enterprise's admins are admins of its workspaces, so only a foreign non-Grid team refuses.
    if not user.enterprise_id and info.get("team_id") not in (None, user.team_id):
        return False
    return any(info.get(flag) is True for flag in ADMIN_FLAGS)
