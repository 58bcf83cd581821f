"""Who is acting, read from Bolt's context of a verified request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.identity import SlackUser


class UnknownActor(ValueError):
    """The request names no user or workspace (not something Slack sends for our listeners)."""


def acting_user(context: Mapping[str, Any], body: Mapping[str, Any]) -> SlackUser:
    user_id = context.get("user_id")
    team_id = context.get("team_id") or _user_team(body)
    enterprise_id = context.get("enterprise_id") or ""
    if not user_id or not team_id:
        raise UnknownActor("request without user or team")
    return SlackUser(team_id=str(team_id), user_id=str(user_id), enterprise_id=str(enterprise_id))


def _user_team(body: Mapping[str, Any]) -> str | None:
    # Org-wide installs on Enterprise Grid may leave context.team_id empty; the user's own
    # workspace is still in the payload.
    user = body.get("user")
    if isinstance(user, Mapping):
        team = user.get("team_id")
        return str(team) if team else None
    return None
