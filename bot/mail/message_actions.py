"""Acting on an e-mail from Slack: make a Bitrix24 task, event, CRM activity or chat of it, move
it to spam or the trash, and suggest recipients as the user types.

Every call runs with the acting user's own webhook, so Bitrix24 decides what they may do. A write
is made once: when its outcome is unknown (time-out, dropped connection, server error) it is not
repeated, and OutcomeUnknown tells the user to look in Bitrix24 instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

from bot.bitrix24 import Bitrix24Client, Bitrix24Error, Credentials, ValidationFailed
from bot.bitrix24.message_actions import (
    Person,
    create_calendar_event,
    create_chat,
    create_crm_activity,
    create_task,
    list_contacts,
    list_employees,
    move_to_folder,
)
from bot.identity import SlackUser
from bot.mail.errors import MailError
from bot.mail.linking import LinkService
from bot.mail.replying import OtherPortal

log = logging.getLogger(__name__)

ActionKind = Literal["task", "event", "crm", "chat", "spam", "delete"]
ACTION_KINDS: tuple[ActionKind, ...] = ("task", "event", "crm", "chat", "spam", "delete")
# The fields in which the pages report an e-mail that is gone or not the user's to act on.
_MESSAGE_FIELDS = frozenset({"messageid", "messageids", "forwardmessageid"})
_T = TypeVar("_T")


class EmailGone(MailError):
    """Bitrix24 says the e-mail was deleted, moved to another folder, or is not yours to see."""

    code = "email_gone"


class OutcomeUnknown(MailError):
    """Bitrix24 did not answer in time: the action may have been carried out."""

    code = "outcome_unknown"

    def __init__(self, kind: ActionKind) -> None:
        super().__init__()
        self.kind = kind


class EventTimesInvalid(MailError):
    """The event must end after it starts."""

    code = "event_times"


@dataclass(frozen=True, kw_only=True)
class ActionDone:
    """What an action made or did: the new object's id where Bitrix24 returns one."""

    kind: ActionKind
    message_id: int
    object_id: int | None = None
    existing: bool = False  # the e-mail already had this chat


class MessageActionService:
    """The use cases behind a card's More menu and Delete button, and recipient suggestions."""

    def __init__(self, *, links: LinkService, bitrix24: Bitrix24Client) -> None:
        self._links = links
        self._bitrix24 = bitrix24

    async def run(
        self,
        user: SlackUser,
        kind: ActionKind,
        message_id: int,
        *,
        portal: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> ActionDone:
        """Carry out one action on the e-mail; `start`/`end` (wall-clock) only for "event"."""
        creds = await self._credentials(user, portal)
        client = self._bitrix24
        done = ActionDone(kind=kind, message_id=message_id)
        if kind == "task":
            task = await _once(kind, create_task(client, creds, message_id))
            return ActionDone(kind=kind, message_id=message_id, object_id=task.task_id)
        if kind == "event":
            if start is None or end is None or end <= start:
                raise EventTimesInvalid()
            event = await _once(
                kind, create_calendar_event(client, creds, message_id, start=start, end=end)
            )
            return ActionDone(kind=kind, message_id=message_id, object_id=event.event_id)
        if kind == "crm":
            await _once(kind, create_crm_activity(client, creds, message_id))
            return done
        if kind == "chat":
            chat = await _once(kind, create_chat(client, creds, message_id))
            return ActionDone(
                kind=kind, message_id=message_id, object_id=chat.chat_id, existing=chat.existing
            )
        await _once(kind, move_to_folder(client, creds, [message_id], kind))
        return done

    async def suggest_recipients(
        self, user: SlackUser, typed: str, *, limit: int, time_box: float
    ) -> list[Person]:
        """Employees, then contacts, matching `typed`, each address once.

        Both look-ups run at once; whatever has not answered within `time_box` is left out
        (and cancelled), so a slow portal yields fewer suggestions rather than a late answer.
        """
        words = " ".join(typed.split())
        if not words:
            return []
        link = await self._links.require(user)
        creds = self._links.credentials(link)
        lookups = [
            asyncio.ensure_future(list_employees(self._bitrix24, creds, words, limit=limit)),
            asyncio.ensure_future(list_contacts(self._bitrix24, creds, words, limit=limit)),
        ]
        done, pending = await asyncio.wait(lookups, timeout=time_box)
        for task in pending:
            task.cancel()
        if pending:
            log.info("recipient look-up cut off after %.1fs user=%s", time_box, user.user_id)
        people: list[Person] = []
        seen: set[str] = set()
        for task in lookups:
            if task not in done:
                continue
            error = task.exception()
            if error is not None:
                log.info(
                    "recipient look-up failed user=%s: %s",
                    user.user_id,
                    getattr(error, "code", type(error).__name__),
                )
                continue
            for person in task.result():
                key = person.email.lower()
                if key not in seen:
                    seen.add(key)
                    people.append(person)
        return people[:limit]

    async def _credentials(self, user: SlackUser, portal: str | None) -> Credentials:
        link = await self._links.require(user)
        if portal and portal.lower() != link.portal_host.lower():
            raise OtherPortal(portal=portal, linked_host=link.portal_host)
        return self._links.credentials(link)


async def _once(kind: ActionKind, call: Awaitable[_T]) -> _T:
    """Await a write; translate "it may have happened" and "the e-mail is gone" for the user."""
    try:
        return await call
    except ValidationFailed as exc:
        if any((c.field or "").lower() in _MESSAGE_FIELDS for c in exc.causes):
            raise EmailGone() from exc
        raise
    except Bitrix24Error as exc:
        if exc.may_have_reached_portal:
            raise OutcomeUnknown(kind) from exc
        raise


def is_action_kind(value: object) -> bool:
    return isinstance(value, str) and value in ACTION_KINDS


ActionRunner = Callable[..., Awaitable[ActionDone]]
