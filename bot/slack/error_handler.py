"""The one place an unexpected listener error becomes a message the user can act on.

The user sees an error id, never a trace; the log has the same id with the trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import BoltResponse

from bot.background import new_error_id
from bot.slack.blocks import modal, section
from bot.slack.wording import Texts

log = logging.getLogger("bot.slack")


async def handle_listener_error(error: Exception, body: dict[str, Any]) -> BoltResponse:
    error_id = new_error_id()
    kind = body.get("type") or ("slash_command" if "command" in body else "unknown")
    log.error("listener failed kind=%s (error id %s)", kind, error_id, exc_info=error)
    text = Texts()("error.unknown", error_id=error_id)
    if kind == "view_submission":
        view = modal(
            callback_id="b24mail_error", title="b24mail", close="Close", blocks=[section(text)]
        )
        return _json({"response_action": "update", "view": view})
    if kind == "block_suggestion":
        return _json({"options": []})
    if kind == "slash_command":
        return _json({"response_type": "ephemeral", "text": text})
    # Buttons and shortcuts: the ack carries no message, so say it where Slack lets us.
    return BoltResponse(status=200, body="")


def _json(payload: dict[str, Any]) -> BoltResponse:
    return BoltResponse(
        status=200, body=json.dumps(payload), headers={"content-type": "application/json"}
    )
