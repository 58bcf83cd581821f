"""Errors of the mail use cases. Like bot.bitrix24's errors, each carries a stable `code`
that the Slack layer maps to a sentence for the user.

    MailError
    ├── NotLinked          "not_linked"      the user has not run /b24mail connect
    ├── NoSenders          "no_senders"      the webhook works but its user has no mailbox to send from
    ├── LinkUnreadable     "link_unreadable" the stored webhook cannot be decrypted (key removed)
    ├── ConnectTimedOut    "connect_timeout" the portal did not answer the connect probe in time
    ├── SendingCapReached  "sending_cap"     the per-user hourly sending cap is reached
    ├── NotFound           "email_not_found" an outbox e-mail that is not the user's or does not exist
    └── TooLateToUndo      "too_late_to_undo" a worker already took the e-mail: it is being sent
"""

from __future__ import annotations


class MailError(Exception):
    code = "mail_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.code)


class NotLinked(MailError):
    """You have not linked a Bitrix24 webhook yet."""

    code = "not_linked"


class NoSenders(MailError):
    """The webhook works, but its Bitrix24 user has no mailbox to send from."""

    code = "no_senders"


class LinkUnreadable(MailError):
    """The stored webhook cannot be decrypted with the configured keys."""

    code = "link_unreadable"


class ConnectTimedOut(MailError):
    """The portal did not answer the connection check in time."""

    code = "connect_timeout"


class SendingCapReached(MailError):
    """The hourly sending cap is reached."""

    code = "sending_cap"

    def __init__(self, cap: int | None = None) -> None:
        super().__init__()
        self.cap = cap


class EmailNotFound(MailError):
    """No such e-mail in your outbox."""

    code = "email_not_found"


class TooLateToUndo(MailError):
    """The e-mail is already on its way: it can no longer be undone or changed."""

    code = "too_late_to_undo"
