"""The workspace policy's modal, the "send outside?" confirm view, and the audit channel's line."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.mail.policy import BLOCKED, OUTSIDE, TOO_MANY, Refusal, WorkspacePolicy, display_domain
from bot.slack import ids
from bot.slack.blocks import Block, context, modal, option, plain, section
from bot.slack.render.connect import escape_mrkdwn
from bot.slack.render.status import recipients_summary
from bot.slack.wording import Texts
from bot.store.audit import POLICY, AuditRecord

CONFIRM_SHOWN = 30
DOMAINS_INPUT_MAX = 3000


def policy_modal(
    t: Texts, policy: WorkspacePolicy, *, instance_max_recipients: int, instance_hourly_cap: int
) -> Block:
    def number(block_id: str, label: str, hint: str, value: int | None, cap: int) -> Block:
        element: Block = {
            "type": "number_input",
            "is_decimal_allowed": False,
            "action_id": ids.POLICY_INPUT_ACTION,
            "min_value": "1",
            "max_value": str(cap),
        }
        if value is not None:
            # The operator may have lowered the instance's cap below the saved one since.
            element["initial_value"] = str(min(value, cap))
        return _input(block_id, t(label), element, hint=t(hint, cap=cap))

    confirm_option = option(t("policy.confirm_option"), ids.POLICY_CONFIRM_VALUE)
    confirm: Block = {
        "type": "checkboxes",
        "action_id": ids.POLICY_INPUT_ACTION,
        "options": [confirm_option],
    }
    if policy.confirm_outside:
        confirm["initial_options"] = [confirm_option]
    channel: Block = {
        "type": "conversations_select",
        "action_id": ids.POLICY_INPUT_ACTION,
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if policy.audit_channel:
        channel["initial_conversation"] = policy.audit_channel
    return modal(
        callback_id=ids.POLICY_VIEW,
        title=t("policy.title"),
        submit=t("policy.submit"),
        close=t("policy.close"),
        blocks=[
            section(t("policy.intro")),
            _input(
                ids.POLICY_ALLOWED_BLOCK,
                t("policy.allowed_label"),
                _domains_input(policy.allowed_domains),
                hint=t("policy.allowed_hint"),
            ),
            _input(
                ids.POLICY_BLOCKED_BLOCK,
                t("policy.blocked_label"),
                _domains_input(policy.blocked_domains),
                hint=t("policy.blocked_hint"),
            ),
            number(
                ids.POLICY_MAX_RECIPIENTS_BLOCK,
                "policy.max_recipients_label",
                "policy.max_recipients_hint",
                policy.max_recipients,
                instance_max_recipients,
            ),
            number(
                ids.POLICY_HOURLY_CAP_BLOCK,
                "policy.hourly_cap_label",
                "policy.hourly_cap_hint",
                policy.hourly_cap,
                instance_hourly_cap,
            ),
            _input(ids.POLICY_CONFIRM_BLOCK, t("policy.confirm_label"), confirm),
            _input(
                ids.POLICY_AUDIT_CHANNEL_BLOCK,
                t("policy.audit_channel_label"),
                channel,
                hint=t("policy.audit_channel_hint"),
            ),
        ],
    )


def _domains_input(domains: Sequence[str]) -> Block:
    element: Block = {
        "type": "plain_text_input",
        "action_id": ids.POLICY_INPUT_ACTION,
        "multiline": True,
        "max_length": DOMAINS_INPUT_MAX,
    }
    if domains:
        element["initial_value"] = "\n".join(display_domain(d) for d in domains)[:DOMAINS_INPUT_MAX]
    return element


def _input(block_id: str, label: str, element: Block, *, hint: str | None = None) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "optional": True,
        "label": plain(label, 2000),
        "element": element,
    }
    if hint:
        block["hint"] = plain(hint, 2000)
    return block


def confirm_outside_view(
    t: Texts, *, outside: Sequence[str], allowed: Sequence[str], private_metadata: str
) -> Block:
    """Pushed over the compose modal: lists the outside addresses; Send queues the e-mail."""
    shown = [f"• {escape_mrkdwn(a)}" for a in outside[:CONFIRM_SHOWN]]
    if len(outside) > CONFIRM_SHOWN:
        shown.append(t("confirm.more", count=len(outside) - CONFIRM_SHOWN))
    domains = ", ".join(display_domain(d) for d in allowed[:CONFIRM_SHOWN])
    return modal(
        callback_id=ids.CONFIRM_OUTSIDE_VIEW,
        title=t("confirm.title"),
        submit=t("confirm.submit"),
        close=t("confirm.close"),
        private_metadata=private_metadata,
        blocks=[
            section(t("confirm.intro", domains=escape_mrkdwn(domains))),
            section("\n".join(shown)),
            context(t("confirm.hint")),
        ],
    )


def confirm_gone_view(t: Texts) -> Block:
    return modal(
        callback_id=ids.CONFIRM_OUTSIDE_VIEW,
        title=t("confirm.title"),
        close=t("confirm.close"),
        blocks=[section(t("confirm.gone"))],
    )


def refusal_text(t: Texts, refusal: Refusal) -> str:
    """The inline error naming the address and the rule it breaks."""
    address = escape_mrkdwn(refusal.address)
    if refusal.rule == BLOCKED:
        return t("policy.refused_blocked", address=address, pattern=escape_mrkdwn(refusal.pattern))
    if refusal.rule == OUTSIDE:
        return t("policy.refused_outside", address=address)
    if refusal.rule == TOO_MANY:
        return t("policy.refused_too_many", count=refusal.count, cap=refusal.cap)
    return t("policy.refused_outside", address=address)


def audit_line(t: Texts, record: AuditRecord) -> str:
    """One line per record in the audit channel. Bcc addresses are counted, never listed."""
    actor = f"<@{record.actor}>"
    if record.kind == POLICY:
        return t("audit.line_policy", actor=actor)
    recipients = recipients_summary(t, [*record.to_addrs, *record.cc_addrs])
    bcc = len(record.bcc_addrs or [])
    if bcc:
        recipients += " " + t("audit.bcc", count=bcc)
    values: dict[str, Any] = {
        "actor": actor,
        "subject": escape_mrkdwn(record.subject or ""),
        "sender": escape_mrkdwn(record.sender or ""),
        "recipients": recipients,
    }
    if record.outcome == "sent":
        return t("audit.line_sent", **values)
    code = record.outcome.removeprefix("failed:")
    return t("audit.line_failed", code=escape_mrkdwn(code), **values)


def policy_form(view: Mapping[str, Any]) -> dict[str, Any]:
    """The raw values of a submitted policy modal (parsing and checks are the caller's)."""
    values = view.get("state", {}).get("values", {})

    def element(block_id: str) -> Mapping[str, Any]:
        block = values.get(block_id) if isinstance(values, Mapping) else None
        found = block.get(ids.POLICY_INPUT_ACTION) if isinstance(block, Mapping) else None
        return found if isinstance(found, Mapping) else {}

    selected = element(ids.POLICY_CONFIRM_BLOCK).get("selected_options")
    return {
        "allowed": str(element(ids.POLICY_ALLOWED_BLOCK).get("value") or ""),
        "blocked": str(element(ids.POLICY_BLOCKED_BLOCK).get("value") or ""),
        "max_recipients": element(ids.POLICY_MAX_RECIPIENTS_BLOCK).get("value"),
        "hourly_cap": element(ids.POLICY_HOURLY_CAP_BLOCK).get("value"),
        "confirm_outside": isinstance(selected, list)
        and any(
            isinstance(o, Mapping) and o.get("value") == ids.POLICY_CONFIRM_VALUE for o in selected
        ),
        "audit_channel": element(ids.POLICY_AUDIT_CHANNEL_BLOCK).get("selected_conversation"),
    }
