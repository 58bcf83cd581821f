"""Publishing a user's Home tab: on app_home_opened and after every change that it shows.

One place for it, so that the Home tab's buttons and the sub-commands that change the same
things (connect, language, notify, signature, templates, scheduled e-mails) redraw it alike.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.identity import SlackUser
from bot.slack.admins import is_workspace_admin
from bot.slack.render.home import HomeState, home_view
from bot.store.base import utcnow
from bot.store.models import OutboxEmail

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services

log = logging.getLogger(__name__)

SCHEDULED_COUNTED = 500


async def publish_home(services: Services, client: AsyncWebClient, user: SlackUser) -> None:
    """Draw the user's Home tab as it is now (views.publish); failures are logged, not raised."""
    try:
        profile = await services.language.profile(user, client=client)
        t = profile.texts()
        link = await services.links.get(user)
        emails = await services.sending.history(user, limit=10)
        admin = await is_workspace_admin(client, user)
        linked = link is not None
        state = HomeState(
            link=link,
            emails=emails,
            chosen_language=profile.chosen,
            slack_language=profile.slack_language,
            policy=await services.policy.of(user) if admin else None,
            instance_max_recipients=services.settings.b24mail_max_recipients,
            instance_hourly_cap=services.settings.b24mail_hourly_cap,
            notify=await services.notify.status(user) if linked else None,
            signatures=sorted(await services.writing.signatures(user)) if linked else [],
            templates=[tpl.name for tpl in await services.writing.templates(user)]
            if linked
            else [],
            scheduled=await _waiting(services, user) if linked else [],
        )
        await client.views_publish(user_id=user.user_id, view=home_view(t, state))
    except (SlackApiError, SlackClientError, OSError) as exc:
        error = exc.response.get("error") if isinstance(exc, SlackApiError) else type(exc).__name__
        log.warning("home tab of user=%s not published: %s", user.user_id, error)


async def _waiting(services: Services, user: SlackUser) -> list[OutboxEmail]:
    """Scheduled e-mails not yet due: one sent now is on its way, no longer waiting. More
    than the tab shows, so that it can say how many more there are."""
    now = utcnow()
    rows = await services.sending.scheduled(user, limit=SCHEDULED_COUNTED)
    return [e for e in rows if e.not_before is not None and _aware(e.not_before) > now]


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; they are UTC like everything stored.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def refresh_home(services: Services, client: AsyncWebClient, user: SlackUser) -> None:
    """Redraw the Home tab after a change, off the request's path."""
    services.background.spawn(publish_home(services, client, user), name="publish-home")
