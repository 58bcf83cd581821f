"""Typed shapes of what the mail methods take and return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ChatCreated",
    "EventCreated",
    "Mailbox",
    "Message",
    "MessageFilter",
    "MessagePage",
    "MoveResult",
    "OutgoingEmail",
    "Person",
    "SendResult",
    "Sender",
    "TaskCreated",
]


class _PortalModel(BaseModel):
    # Portal answers gain fields over time and leave optional ones out; take what is known.
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class Sender(_PortalModel):
    """An address the user may send from (`mail.mailbox.senders`)."""

    email: str
    name: str = ""
    sender: str = ""

    @field_validator("name", "sender", mode="before")
    @classmethod
    def _none_to_empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @model_validator(mode="before")
    @classmethod
    def _fill_sender(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("sender") and data.get("email"):
            name, email = data.get("name") or "", data["email"]
            data = {**data, "sender": f"{name} <{email}>" if name else email}
        return data


class Mailbox(_PortalModel):
    """A mailbox of the user (`mail.mailbox.list`)."""

    id: int
    name: str = ""
    email: str = ""
    sender_name: str = Field(default="", alias="senderName")

    @field_validator("name", "email", "sender_name", mode="before")
    @classmethod
    def _none_to_empty(cls, value: Any) -> Any:
        return "" if value is None else value


class Message(_PortalModel):
    """An e-mail as `mail.message.list/get/thread` return it; `from`, `to`, `cc` are plain text.

    `date` is aware when the portal sends an offset and naive otherwise (the thread method
    sends local time without one).
    """

    id: int
    mailbox_id: int | None = Field(default=None, alias="mailboxId")
    mailbox_email: str | None = Field(default=None, alias="mailboxEmail")
    subject: str = ""
    from_: str = Field(default="", alias="from")
    to: str = ""
    cc: str = ""
    date: datetime | None = None
    is_seen: bool | None = Field(default=None, alias="isSeen")
    has_attachments: bool | None = Field(default=None, alias="hasAttachments")
    url: str | None = None
    body: str | None = None
    bindings: list[Any] | dict[str, Any] = Field(default_factory=list)

    @field_validator("subject", "from_", "to", "cc", mode="before")
    @classmethod
    def _address_text(cls, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, list | tuple):
            return ", ".join(str(item) for item in value if item)
        return value

    @field_validator("date", mode="before")
    @classmethod
    def _lenient_date(cls, value: Any) -> Any:
        if value in (None, "", 0) or isinstance(value, bool):
            return None
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.strip())
            except ValueError:
                # An unreadable date should not cost the whole e-mail.
                return None
        return value

    @field_validator("mailbox_id", mode="before")
    @classmethod
    def _empty_id(cls, value: Any) -> Any:
        return None if value in ("", 0) else value

    @field_validator("bindings", mode="before")
    @classmethod
    def _no_bindings(cls, value: Any) -> Any:
        return [] if value is None or value == "" else value


class MessageFilter(BaseModel):
    """Filters of `mail.message.list`; sent as top-level keys (mailboxId, searchQuery, ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mailbox_id: int | None = None
    search_query: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    is_seen: bool | None = None
    has_attachments: bool | None = None
    folder: str | None = None

    @field_validator("date_from", "date_to")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError("dates must be timezone-aware")
        return value

    def to_params(self) -> dict[str, Any]:
        """The request keys for the set filters, dates as ISO 8601 with offset."""
        params: dict[str, Any] = {}
        if self.mailbox_id is not None:
            params["mailboxId"] = self.mailbox_id
        if self.search_query is not None:
            params["searchQuery"] = self.search_query
        if self.date_from is not None:
            params["dateFrom"] = self.date_from.isoformat(timespec="seconds")
        if self.date_to is not None:
            params["dateTo"] = self.date_to.isoformat(timespec="seconds")
        if self.is_seen is not None:
            params["isSeen"] = self.is_seen
        if self.has_attachments is not None:
            params["hasAttachments"] = self.has_attachments
        if self.folder is not None:
            params["folder"] = self.folder
        return params


class MessagePage(BaseModel):
    """One page of `mail.message.list`.

    The portal reports no total, so `has_more` means the page came back full: the next
    page may still turn out empty.
    """

    model_config = ConfigDict(frozen=True)

    items: list[Message]
    page: int
    limit: int
    has_more: bool


class OutgoingEmail(BaseModel):
    """An e-mail to send, reply or forward; `body` is HTML."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    from_: str
    to: list[str]
    cc: list[str] = Field(default_factory=list)
    bcc: list[str] = Field(default_factory=list)
    subject: str
    body: str

    def to_payload(self) -> dict[str, Any]:
        """The JSON body of `mail.message.send`; empty cc/bcc are left out."""
        payload: dict[str, Any] = {"from": self.from_, "to": list(self.to)}
        if self.cc:
            payload["cc"] = list(self.cc)
        if self.bcc:
            payload["bcc"] = list(self.bcc)
        payload["subject"] = self.subject
        payload["body"] = self.body
        return payload


class SendResult(BaseModel):
    """What send/reply/forward returned; `replayed` when the portal answered from its idempotency store."""

    model_config = ConfigDict(frozen=True)

    success: bool
    to: list[str] = Field(default_factory=list)
    replayed: bool = False


class TaskCreated(_PortalModel):
    """`mail.message.createtask`: the new task's id."""

    success: bool
    task_id: int = Field(alias="taskId")
    message_id: int | None = Field(default=None, alias="messageId")


class EventCreated(_PortalModel):
    """`mail.message.createcalendarevent`: the new event's id."""

    success: bool
    event_id: int = Field(alias="eventId")
    message_id: int | None = Field(default=None, alias="messageId")


class ChatCreated(_PortalModel):
    """`mail.message.createchat`: the chat's id; `existing` when the e-mail had one already."""

    success: bool
    chat_id: int = Field(alias="chatId")
    message_id: int | None = Field(default=None, alias="messageId")
    existing: bool = False


class MoveResult(_PortalModel):
    """`mail.message.movetofolder`: how many e-mails were moved, and how."""

    success: bool
    moved_count: int = Field(default=0, alias="movedCount")
    action: str = ""


class Person(_PortalModel):
    """An employee or a CRM/address-book contact (`mail.recipient.*`)."""

    id: int | None = None
    email: str
    name: str = ""

    @field_validator("name", mode="before")
    @classmethod
    def _none_to_empty(cls, value: Any) -> Any:
        return "" if value is None else value
