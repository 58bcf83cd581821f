"""Turning coded errors into the sentence a user reads (never raw JSON, a trace or a secret)."""

from __future__ import annotations

from bot.bitrix24 import Bitrix24Error, OperationTimeLimit, PortalMoved
from bot.mail.errors import MailError
from bot.slack.blocks import clip
from bot.slack.wording import Texts


def explain(t: Texts, error: Bitrix24Error | MailError, *, limit: int = 3000) -> str:
    params: dict[str, object] = {}
    if isinstance(error, PortalMoved):
        params["new_host"] = error.new_host or "?"
    if isinstance(error, OperationTimeLimit) and error.reset_at is not None:
        params["reset"] = t.format_time(error.reset_at)
    host = getattr(error, "host", None)
    params["host"] = host or t("error.this_portal")
    return clip(t.error(error.code, **params), limit)
