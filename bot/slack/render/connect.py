"""The connect modal, its success view, the connect prompt, status and help messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.slack import ids
from bot.slack.blocks import Block, actions, button, context, divider, header, modal, plain, section
from bot.slack.wording import Texts


def connect_modal(t: Texts, *, private_metadata: str = "") -> Block:
    return modal(
        callback_id=ids.CONNECT_VIEW,
        title=t("connect.title"),
        submit=t("connect.submit"),
        close=t("connect.close"),
        private_metadata=private_metadata,
        blocks=[
            section(t("connect.intro")),
            section(t("connect.steps")),
            {
                "type": "input",
                "block_id": ids.CONNECT_URL_BLOCK,
                "label": plain(t("connect.label")),
                "hint": plain(t("connect.hint")),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.CONNECT_URL_ACTION,
                    "placeholder": plain(t("connect.placeholder"), 150),
                    "max_length": 500,
                },
            },
        ],
    )


def connected_view(
    t: Texts, *, host: str, b24_user_id: int, senders: Sequence[dict[str, Any]]
) -> Block:
    return modal(
        callback_id=ids.CONNECT_VIEW,
        title=t("connect.done_title"),
        close=t("connect.done_close"),
        blocks=[
            section(t("connect.done", host=host, b24_user_id=b24_user_id)),
            section(_sender_lines(senders)),
            context(t("connect.done_next")),
        ],
    )


def connect_prompt(t: Texts, *, reason: str | None = None) -> list[Block]:
    return [
        section(reason or t("connect.prompt")),
        actions(
            button(t("connect.button"), action_id=ids.OPEN_CONNECT_ACTION, style="primary"),
        ),
    ]


def status_blocks(
    t: Texts,
    *,
    host: str,
    b24_user_id: int,
    senders: Sequence[dict[str, Any]],
    last_checked: str | None,
    linked_at: str,
) -> list[Block]:
    lines = [t("status.portal", host=host), t("status.user", b24_user_id=b24_user_id)]
    blocks = [header(t("status.title")), section("\n".join(lines))]
    if senders:
        blocks.append(section(t("status.senders") + "\n" + _sender_lines(senders)))
    else:
        blocks.append(section(t("status.no_senders")))
    checked = t("status.checked", when=last_checked) if last_checked else t("status.never_checked")
    blocks.append(context(checked, t("status.linked_at", when=linked_at)))
    return blocks


def help_blocks(t: Texts, *, unknown: str | None = None, linked: bool = True) -> list[Block]:
    blocks: list[Block] = []
    if unknown:
        blocks.append(section(t("help.unknown_subcommand", subcommand=_code_safe(unknown))))
    blocks += [header(t("help.title")), section(t("help.body"))]
    if not linked:
        blocks += [divider(), *connect_prompt(t, reason=t("help.not_linked_hint"))]
    return blocks


def slack_date(when: datetime, fallback: str) -> str:
    """A Slack date token: each reader sees it in their own time zone."""
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _sender_lines(senders: Sequence[dict[str, Any]]) -> str:
    return "\n".join(
        f"• {escape_mrkdwn(str(s.get('sender') or s.get('email')))}" for s in senders[:40]
    )


def escape_mrkdwn(text: str) -> str:
    """Escape what Slack would read as markup or mentions in text we did not write."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code_safe(text: str) -> str:
    return escape_mrkdwn(text.replace("`", "'"))
