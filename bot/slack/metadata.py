"""What a modal remembers between opening and submission (Slack's private_metadata, ≤ 3000 chars)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_PRIVATE_METADATA = 3000


class ViewOrigin(BaseModel):
    """Where the user acted: results are posted back there."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    channel_id: str | None = Field(default=None, max_length=32)
    thread_ts: str | None = Field(default=None, max_length=32)
    reply_to_message_id: int | None = Field(default=None, ge=1)
    forward_message_id: int | None = Field(default=None, ge=1)
    # The e-mail a More action (the calendar event) is about.
    message_id: int | None = Field(default=None, ge=1)
    # The portal the e-mail was shared from (cards), checked against the user's own link.
    portal: str | None = Field(default=None, max_length=255)
    # Where an action's result goes when there is no thread (an ephemeral inbox entry).
    ephemeral: bool | None = None
    resend_of: str | None = Field(default=None, max_length=36)
    draft_id: str | None = Field(default=None, max_length=36)  # the draft this modal continues

    def encode(self) -> str:
        text = self.model_dump_json(exclude_none=True)
        if len(text) > MAX_PRIVATE_METADATA:
            raise ValueError("private_metadata is over Slack's 3000 characters")
        return text

    @classmethod
    def decode(cls, text: str | None) -> ViewOrigin:
        """Read our own metadata back; anything unreadable becomes an empty origin."""
        if not text:
            return cls()
        try:
            return cls.model_validate_json(text)
        except ValidationError:
            return cls()
