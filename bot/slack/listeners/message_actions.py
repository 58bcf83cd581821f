"""A card's More menu and Delete button, and the calendar event modal.

Each action is acked at once and runs afterwards with the acting user's own webhook; its result
(or why it failed) goes to the card's thread, or to the user alone for an ephemeral inbox entry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.background import new_error_id
from bot.bitrix24 import Bitrix24Error, ValidationFailed
from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.mail.message_actions import ActionKind
from bot.mail.replying import OtherPortal
from bot.slack import ids
from bot.slack.errors import explain
from bot.slack.metadata import ViewOrigin
from bot.slack.render.card import card_reference_from_value
from bot.slack.render.connect import escape_mrkdwn
from bot.slack.render.email_actions import ActionRef
from bot.slack.render.message_actions import action_done_text, action_failed_text, event_modal
from bot.slack.slack_calls import open_view_or_explain, prompt_connect
from bot.slack.wording import Texts

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResultPlace:
    """Where an action's outcome is posted: the card's thread, or only to the user."""

    channel: str | None
    thread_ts: str | None
    ephemeral: bool

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ResultPlace:
        container = body.get("container") or {}
        channel = _str(container.get("channel_id")) or _str((body.get("channel") or {}).get("id"))
        message = body.get("message") or {}
        if container.get("is_ephemeral") or not message:
            return cls(channel, None, ephemeral=True)
        thread_ts = _str(message.get("thread_ts")) or _str(message.get("ts"))
        return cls(channel, thread_ts, ephemeral=False)


async def on_more(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    await ack()
    ref = ActionRef.decode((action.get("selected_option") or {}).get("value"))
    if ref is None:
        log.warning("More with an unreadable option user=%s", user.user_id)
        return
    await _start(
        services,
        body=body,
        client=client,
        respond=respond,
        user=user,
        t=t,
        kind=ref.kind,
        message_id=ref.message_id,
        portal=ref.portal,
    )


async def on_delete(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    # Slack asked "Delete this e-mail?" before sending this action.
    await ack()
    ref = card_reference_from_value(action.get("value"))
    if ref is None:
        log.warning("Delete with an unreadable value user=%s", user.user_id)
        return
    await _start(
        services,
        body=body,
        client=client,
        respond=respond,
        user=user,
        t=t,
        kind="delete",
        message_id=ref.message_id,
        portal=ref.portal,
    )


async def on_event_submit(
    ack: AsyncAck,
    view: dict[str, Any],
    client: AsyncWebClient,
    user: SlackUser,
    t: Texts,
    services: Services,
) -> None:
    origin = ViewOrigin.decode(view.get("private_metadata"))
    start = _picked(view, ids.EVENT_START_BLOCK, ids.EVENT_START_ACTION)
    end = _picked(view, ids.EVENT_END_BLOCK, ids.EVENT_END_ACTION)
    errors = {}
    if start is None:
        errors[ids.EVENT_START_BLOCK] = t("event.required")
    if end is None:
        errors[ids.EVENT_END_BLOCK] = t("event.required")
    elif start is not None and end <= start:
        errors[ids.EVENT_END_BLOCK] = t("error.event_times")
    if errors or origin.message_id is None:
        await ack(
            response_action="errors",
            errors=errors or {ids.EVENT_START_BLOCK: t("error.email_gone")},
        )
        return
    await ack()
    place = ResultPlace(origin.channel_id, origin.thread_ts, ephemeral=bool(origin.ephemeral))
    services.background.spawn(
        run_and_report(
            services,
            client=client,
            respond=None,
            t=t,
            user=user,
            place=place,
            kind="event",
            message_id=origin.message_id,
            portal=origin.portal,
            start=start,
            end=end,
        ),
        name="email-action",
    )


def register(app: AsyncApp) -> None:
    app.action(ids.CARD_MORE_ACTION)(on_more)
    app.action(ids.CARD_DELETE_ACTION)(on_delete)
    app.view_submission(ids.EVENT_VIEW)(on_event_submit)


async def _start(
    services: Services,
    *,
    body: Mapping[str, Any],
    client: AsyncWebClient,
    respond: AsyncRespond,
    user: SlackUser,
    t: Texts,
    kind: ActionKind,
    message_id: int,
    portal: str | None,
) -> None:
    """After the ack: the event modal (its trigger is fresh only now), or the action itself."""
    place = ResultPlace.of(body)
    if await services.links.get(user) is None:
        services.background.spawn(
            prompt_connect(respond, t),
            name="action-needs-link",
        )
        return
    log.info("email action %s email=%s user=%s", kind, message_id, user.user_id)
    if kind == "event":
        origin = ViewOrigin(
            channel_id=place.channel,
            thread_ts=place.thread_ts,
            message_id=message_id,
            portal=portal,
            ephemeral=place.ephemeral or None,
        )
        view = event_modal(t, origin=origin, now=t.local(datetime.now(UTC)))
        services.background.spawn(
            open_view_or_explain(
                client=client,
                trigger_id=str(body.get("trigger_id", "")),
                view=view,
                respond=respond,
                t=t,
            ),
            name="open-event-modal",
        )
        return
    services.background.spawn(
        run_and_report(
            services,
            client=client,
            respond=respond,
            t=t,
            user=user,
            place=place,
            kind=kind,
            message_id=message_id,
            portal=portal,
        ),
        name="email-action",
    )


async def run_and_report(
    services: Services,
    *,
    client: AsyncWebClient,
    respond: AsyncRespond | None,
    t: Texts,
    user: SlackUser,
    place: ResultPlace,
    kind: ActionKind,
    message_id: int,
    portal: str | None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> None:
    """Run the action in Bitrix24 and say how it went where the user acted."""
    try:
        done = await services.message_actions.run(
            user,
            kind,
            message_id,
            portal=portal,
            # Bitrix24 takes wall-clock times: the user's, as they picked them.
            start=t.local(start).replace(tzinfo=None) if start else None,
            end=t.local(end).replace(tzinfo=None) if end else None,
        )
    except OtherPortal as exc:
        reason = t("action.other_portal", portal=exc.portal, host=exc.linked_host)
        text = action_failed_text(t, kind, user_id=user.user_id, reason=reason)
    except ValidationFailed as exc:
        # Bitrix24's own words say what is wrong (a module not installed, no rights on tasks…).
        log.info("email action %s email=%s refused: %s", kind, message_id, exc.code)
        detail = "; ".join(c.message for c in exc.causes if c.message) or exc.portal_message
        reason = t("action.refused", detail=escape_mrkdwn((detail or "—")[:500]))
        text = action_failed_text(t, kind, user_id=user.user_id, reason=reason)
    except (Bitrix24Error, MailError) as exc:
        log.info("email action %s email=%s failed: %s", kind, message_id, exc.code)
        text = action_failed_text(t, kind, user_id=user.user_id, reason=explain(t, exc))
    except Exception:
        error_id = new_error_id()
        log.exception("email action %s email=%s crashed (error id %s)", kind, message_id, error_id)
        reason = t("error.unknown", error_id=error_id)
        text = action_failed_text(t, kind, user_id=user.user_id, reason=reason)
    else:
        log.info("email action %s email=%s done object=%s", kind, message_id, done.object_id)
        text = action_done_text(t, done, user_id=user.user_id, start=start, end=end)
    await report(client, respond, place, user, text)


async def report(
    client: AsyncWebClient,
    respond: AsyncRespond | None,
    place: ResultPlace,
    user: SlackUser,
    text: str,
) -> None:
    """Post in the thread; if Slack refuses (not in the channel), tell the user alone."""
    if place.channel and not place.ephemeral:
        try:
            await client.chat_postMessage(
                channel=place.channel, thread_ts=place.thread_ts, text=text, unfurl_links=False
            )
            return
        except (SlackApiError, SlackClientError) as exc:
            log.info("action result not posted in %s: %s", place.channel, _slack_error(exc))
    if respond is not None:
        try:
            await respond(text=text, response_type="ephemeral", replace_original=False)
            return
        except Exception as exc:  # noqa: BLE001 - an expired response_url: try the next way
            log.info("action result not sent by response_url: %s", type(exc).__name__)
    if place.channel and place.ephemeral:
        try:
            await client.chat_postEphemeral(channel=place.channel, user=user.user_id, text=text)
            return
        except (SlackApiError, SlackClientError) as exc:
            log.info("action result not shown in %s: %s", place.channel, _slack_error(exc))
    try:
        # The last way that always works for a bot: a direct message.
        await client.chat_postMessage(channel=user.user_id, text=text)
    except (SlackApiError, SlackClientError) as exc:
        log.warning("action result could not reach user=%s: %s", user.user_id, _slack_error(exc))


def _picked(view: Mapping[str, Any], block_id: str, action_id: str) -> datetime | None:
    values = (view.get("state") or {}).get("values") or {}
    element = (values.get(block_id) or {}).get(action_id) or {}
    stamp = element.get("selected_date_time") if isinstance(element, Mapping) else None
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        return None
    try:
        return datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _slack_error(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error", "unknown"))
    return type(exc).__name__


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
