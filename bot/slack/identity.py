"""Who is acting, read from Bolt's context of a verified request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.identity import SlackUser


def acting_user(context: Mapping[str, Any], body: Mapping[str, Any]) -> SlackUser | None:
    """The user of the request, or None when it names no user or workspace (app_uninstalled,
    tokens_revoked, url_verification)."""
    user_id = context.get("user_id")
    team_id = context.get("team_id") or _user_team(body)
    enterprise_id = context.get("enterprise_id") or ""
    if not user_id or not team_id:
        return None
    return SlackUser(team_id=str(team_id), user_id=str(user_id), enterprise_id=str(enterprise_id))


def _user_team(body: Mapping[str, Any]) -> str | None:
    # Org-wide installs on Enterprise Grid may leave context.team_id empty; the user's own
    # workspace is still in the payload.
    user = body.get("user")
    if isinstance(user, Mapping):
        team = user.get("team_id")
        return str(team) if team else None
    return None
