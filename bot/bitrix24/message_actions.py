"""Acting on an e-mail in Bitrix24 (forward aside): make a task, event, CRM activity or chat of
it, file it as spam or in the trash, and look up recipients (`mail.message.create*`,
`mail.message.movetofolder`, `mail.recipient.*`).

The writes carry no Idempotency-Key, so the client never repeats one whose outcome is unknown
(a time-out, a dropped connection, a 5xx): it raises, and the caller says "may have been made".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from .client import Bitrix24Client
from .credentials import Credentials
from .errors import UnexpectedResponse
from .models import ChatCreated, EventCreated, MoveResult, Person, TaskCreated

__all__ = [
    "ChatCreated",
    "EventCreated",
    "FolderAction",
    "MoveResult",
    "Person",
    "TaskCreated",
    "create_calendar_event",
    "create_chat",
    "create_crm_activity",
    "create_task",
    "list_contacts",
    "list_employees",
    "move_to_folder",
    "portal_datetime",
]

FolderAction = Literal["move", "spam", "delete"]
RECIPIENTS_MAX = 200
_Model = TypeVar("_Model", bound=BaseModel)


def portal_datetime(moment: datetime) -> str:
    """The `Y-m-d H:i:s` form the calendar method takes (wall-clock time, no offset)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


async def create_task(
    client: Bitrix24Client,
    creds: Credentials,
    message_id: int,
    *,
    title: str | None = None,
    responsible_id: int | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> TaskCreated:
    """A Bitrix24 task from the e-mail; without a title the portal uses the e-mail's subject."""
    method = "mail.message.createtask"
    params: dict[str, Any] = {"messageId": _positive(message_id, "message_id")}
    if title:
        params["title"] = title
    if responsible_id is not None:
        params["responsibleId"] = _positive(responsible_id, "responsible_id")
    if description:
        params["description"] = description
    result = await client.call(creds, method, params, timeout=timeout)
    return _parse(TaskCreated, result, creds, method)


async def create_calendar_event(
    client: Bitrix24Client,
    creds: Credentials,
    message_id: int,
    *,
    start: datetime,
    end: datetime,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
) -> EventCreated:
    """A calendar event from the e-mail; `start` and `end` are sent as their wall-clock time."""
    if end <= start:
        raise ValueError("end must be after start")
    method = "mail.message.createcalendarevent"
    params: dict[str, Any] = {
        "messageId": _positive(message_id, "message_id"),
        "dateFrom": portal_datetime(start),
        "dateTo": portal_datetime(end),
    }
    if name:
        params["name"] = name
    if description:
        params["description"] = description
    result = await client.call(creds, method, params, timeout=timeout)
    return _parse(EventCreated, result, creds, method)


async def create_crm_activity(
    client: Bitrix24Client, creds: Credentials, message_id: int, *, timeout: float | None = None
) -> bool:
    """A CRM activity from the e-mail; the portal answers a bare `true`."""
    method = "mail.message.createcrmactivity"
    params = {"messageId": _positive(message_id, "message_id")}
    result = await client.call(creds, method, params, timeout=timeout)
    if not isinstance(result, bool):
        raise UnexpectedResponse(host=creds.host, method=method)
    return result


async def create_chat(
    client: Bitrix24Client, creds: Credentials, message_id: int, *, timeout: float | None = None
) -> ChatCreated:
    """A Bitrix24 chat about the e-mail (the one it already has, if any)."""
    method = "mail.message.createchat"
    params = {"messageId": _positive(message_id, "message_id")}
    result = await client.call(creds, method, params, timeout=timeout)
    return _parse(ChatCreated, result, creds, method)


async def move_to_folder(
    client: Bitrix24Client,
    creds: Credentials,
    message_ids: Sequence[int],
    action: FolderAction,
    *,
    folder: str | None = None,
    timeout: float | None = None,
) -> MoveResult:
    """Move e-mails of one folder and mailbox: to `folder`, to spam, or to the trash."""
    if not message_ids:
        raise ValueError("message_ids must not be empty")
    if action == "move" and not folder:
        raise ValueError("folder is required to move")
    method = "mail.message.movetofolder"
    params: dict[str, Any] = {
        "messageIds": [_positive(i, "message_ids") for i in message_ids],
        "action": action,
    }
    if action == "move":
        params["folder"] = folder
    result = await client.call(creds, method, params, timeout=timeout)
    return _parse(MoveResult, result, creds, method)


async def list_employees(
    client: Bitrix24Client,
    creds: Credentials,
    query: str,
    *,
    limit: int = 20,
    timeout: float | None = None,
) -> list[Person]:
    """Portal users whose name or address contains `query` (at least one character)."""
    if not query.strip():
        raise ValueError("query must not be blank")
    return await _people(
        client, creds, "mail.recipient.listemployees", query.strip(), limit, timeout
    )


async def list_contacts(
    client: Bitrix24Client,
    creds: Credentials,
    query: str | None = None,
    *,
    limit: int = 20,
    timeout: float | None = None,
) -> list[Person]:
    """Contacts of the user's address book matching `query`; the latest ones without it."""
    words = query.strip() if query else None
    return await _people(client, creds, "mail.recipient.listcontacts", words, limit, timeout)


async def _people(
    client: Bitrix24Client,
    creds: Credentials,
    method: str,
    query: str | None,
    limit: int,
    timeout: float | None,
) -> list[Person]:
    if not 1 <= _positive(limit, "limit") <= RECIPIENTS_MAX:
        raise ValueError(f"limit must be at most {RECIPIENTS_MAX}")
    params: dict[str, Any] = {"pagination": {"page": 1, "limit": limit}}
    if query:
        params["query"] = query
    result = await client.call(creds, method, params, read_only=True, timeout=timeout)
    items = result.get("items") if isinstance(result, Mapping) else None
    if not isinstance(items, list):
        raise UnexpectedResponse(host=creds.host, method=method)
    people = []
    for item in items:
        # One odd entry (no address) should not cost the whole list of suggestions.
        if isinstance(item, Mapping) and isinstance(item.get("email"), str) and item["email"]:
            people.append(_parse(Person, item, creds, method))
    return people


def _parse(model: type[_Model], data: Any, creds: Credentials, method: str) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UnexpectedResponse(host=creds.host, method=method) from exc


def _positive(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer")
    return value
