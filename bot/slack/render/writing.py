"""Drafts, signatures and templates as Slack shows them: lists with buttons, and their modals.

Each function takes plain values (no Slack request), so the App Home can show the same blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bot.slack import ids
from bot.slack.blocks import Block, actions, button, context, header, modal, plain, section
from bot.slack.render.connect import escape_mrkdwn, slack_date
from bot.slack.render.status import recipients_summary
from bot.slack.wording import Texts

SIGNATURE_SENDERS_MAX = 20  # one input each; a modal holds 100 blocks
LISTED_MAX = 15  # two blocks each within a message's 50


def draft_summary(t: Texts, content: Mapping[str, Any]) -> str:
    """`*Subject* to a@b.c` of a draft, with what is missing named plainly."""
    subject = " ".join(str(content.get("subject") or "").split())
    to = [a.strip() for a in str(content.get("to") or "").replace(";", ",").split(",") if a.strip()]
    return t(
        "drafts.summary",
        subject=escape_mrkdwn(subject[:150]) if subject else t("drafts.no_subject"),
        recipients=recipients_summary(t, to) if to else t("drafts.no_recipients"),
    )


def drafts_blocks(
    t: Texts, drafts: Sequence[tuple[str, datetime, Mapping[str, Any]]], *, kept_days: int
) -> list[Block]:
    """`/b24mail drafts`: (id, saved at, content) newest first, each with Open and Discard."""
    if not drafts:
        return [section(t("drafts.empty"))]
    blocks: list[Block] = [header(t("drafts.title"))]
    for draft_id, saved, content in drafts[:LISTED_MAX]:
        blocks += [
            section(
                t(
                    "drafts.line",
                    summary=draft_summary(t, content),
                    when=slack_date(saved, t.format_datetime(saved)),
                )
            ),
            actions(
                button(t("drafts.open"), action_id=ids.DRAFT_OPEN_ACTION, value=draft_id),
                button(
                    t("drafts.discard"),
                    action_id=ids.DRAFT_DISCARD_ACTION,
                    value=draft_id,
                    style="danger",
                ),
            ),
        ]
    blocks.append(context(t.plural("drafts.kept_for", kept_days)))
    return blocks


def draft_offer_blocks(t: Texts, draft_id: str, content: Mapping[str, Any]) -> list[Block]:
    """`/b24mail` with a draft waiting: continue it, or start a new e-mail."""
    return [
        section(t("drafts.offer", summary=draft_summary(t, content))),
        actions(
            button(
                t("drafts.continue"),
                action_id=ids.DRAFT_OPEN_ACTION,
                value=draft_id,
                style="primary",
            ),
            button(t("drafts.fresh"), action_id=ids.DRAFT_FRESH_ACTION, value=draft_id),
        ),
    ]


def signature_block_id(index: int) -> str:
    return f"{ids.SIGNATURE_BODY_BLOCK}-{index}"


def signature_modal(
    t: Texts,
    *,
    senders: Sequence[Mapping[str, Any]],
    signatures: Mapping[str, Mapping[str, Any]],
) -> Block:
    """One rich-text field per sender address, filled with its signature; empty removes it."""
    blocks: list[Block] = [context(t("signature.intro"))]
    for index, sender in enumerate(senders[:SIGNATURE_SENDERS_MAX]):
        email = str(sender.get("email", ""))
        element: Block = {"type": "rich_text_input", "action_id": ids.BODY_ACTION}
        existing = signatures.get(email.lower())
        if existing:
            element["initial_value"] = dict(existing)
        blocks.append(
            {
                "type": "input",
                "block_id": signature_block_id(index),
                "label": plain(str(sender.get("sender") or email), 2000),
                "element": element,
                "optional": True,
            }
        )
    return modal(
        callback_id=ids.SIGNATURE_VIEW,
        title=t("signature.title"),
        submit=t("signature.submit"),
        close=t("compose.close"),
        blocks=blocks,
        private_metadata="",
    )


def templates_blocks(t: Texts, templates: Sequence[tuple[int, str, str]]) -> list[Block]:
    """`/b24mail templates`: (id, name, subject) with Delete each, and Add template."""
    blocks: list[Block] = [header(t("templates.title"))]
    if not templates:
        blocks.append(section(t("templates.empty")))
    for template_id, name, subject in templates[:LISTED_MAX]:
        blocks.append(
            section(
                t(
                    "templates.line",
                    name=escape_mrkdwn(name),
                    subject=escape_mrkdwn(subject[:150]),
                ),
                accessory=button(
                    t("templates.delete"),
                    action_id=ids.TEMPLATE_DELETE_ACTION,
                    value=str(template_id),
                    style="danger",
                ),
            )
        )
    blocks.append(
        actions(
            button(
                t("templates.add"), action_id=ids.TEMPLATE_ADD_ACTION, value="add", style="primary"
            )
        )
    )
    return blocks


def template_modal(t: Texts) -> Block:
    """A new template: its name, subject and body."""

    def text_input(block_id: str, action_id: str, label: str, max_length: int) -> Block:
        return {
            "type": "input",
            "block_id": block_id,
            "label": plain(label, 2000),
            "element": {
                "type": "plain_text_input",
                "action_id": action_id,
                "max_length": max_length,
            },
        }

    return modal(
        callback_id=ids.TEMPLATE_VIEW,
        title=t("templates.modal_title"),
        submit=t("templates.save"),
        close=t("compose.close"),
        blocks=[
            text_input(ids.TEMPLATE_NAME_BLOCK, ids.TEMPLATE_NAME_ACTION, t("templates.name"), 75),
            text_input(ids.SUBJECT_BLOCK, ids.SUBJECT_ACTION, t("compose.subject"), 250),
            {
                "type": "input",
                "block_id": ids.BODY_BLOCK,
                "label": plain(t("compose.body"), 2000),
                "element": {"type": "rich_text_input", "action_id": ids.BODY_ACTION},
            },
        ],
        private_metadata="",
    )
