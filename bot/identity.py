"""SlackUser: who acts. The key of everything a user owns, in every layer below Slack's."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SlackUser:
    """A Slack user in a workspace (and an Enterprise Grid org, "" outside one)."""

    team_id: str
    user_id: str
    enterprise_id: str = ""
