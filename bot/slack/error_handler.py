"""The one place an unexpected listener error becomes a message the user can act on.

The user sees an error id, never a trace; the log has the same id with the trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import BoltResponse

from bot.background import new_error_id
from bot.mail.errors import SendingCapReached
from bot.slack import ids
from bot.slack.blocks import modal, section
from bot.slack.language import texts_in
from bot.slack.wording import Texts

log = logging.getLogger("bot.slack")


async def handle_listener_error(
    error: Exception, body: dict[str, Any], context: dict[str, Any] | None = None
) -> BoltResponse:
    # The listener left the user's Texts in Bolt's context (English if it failed before that).
    t = texts_in(context)
    kind = body.get("type") or ("slash_command" if "command" in body else "unknown")
    if isinstance(error, SendingCapReached) and kind == "view_submission":
        # The cap is checked before a submission is stored, and again while it is stored; a
        # submission that loses that race gets the same inline message as the first check gives.
        return _cap_reached(t, error, body)
    error_id = new_error_id()
    log.error("listener failed kind=%s (error id %s)", kind, error_id, exc_info=error)
    text = t("error.unknown", error_id=error_id)
    if kind == "view_submission":
        view = _error_view(t, text)
        return _json({"response_action": "update", "view": view})
    if kind == "block_suggestion":
        return _json({"options": []})
    if kind == "slash_command":
        return _json({"response_type": "ephemeral", "text": text})
    # Buttons and shortcuts: the ack carries no message, so say it where Slack lets us.
    return BoltResponse(status=200, body="")


def _cap_reached(t: Texts, error: SendingCapReached, body: dict[str, Any]) -> BoltResponse:
    text = (
        t.error(error.code, cap=error.cap) if error.cap is not None else t("error.sending_cap_any")
    )
    view = body.get("view")
    state = view.get("state") if isinstance(view, dict) else None
    values = state.get("values") if isinstance(state, dict) else None
    if isinstance(values, dict) and ids.TO_BLOCK in values:
        return _json({"response_action": "errors", "errors": {ids.TO_BLOCK: text}})
    return _json({"response_action": "update", "view": _error_view(t, text)})


def _error_view(t: Texts, text: str) -> dict[str, Any]:
    return modal(
        callback_id="b24mail_error",
        title=t("modal.error_title"),
        close=t("modal.close"),
        blocks=[section(text)],
    )


def _json(payload: dict[str, Any]) -> BoltResponse:
    return BoltResponse(
        status=200, body=json.dumps(payload), headers={"content-type": "application/json"}
    )
