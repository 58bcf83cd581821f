"""The Home tab: where the user stands (link, language, new-mail notifications, signatures and
templates, scheduled and last e-mails) and, for admins, the workspace's e-mail policy with a
button to edit it.

Everything is clipped to Slack's limits: at most 100 blocks in a Home view, 3000 characters
in a section; the last 10 e-mails make one section, long lists are cut with a line that says
how many more there are and which sub-command lists them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.mail.notify import NotifyStatus
from bot.mail.policy import WorkspacePolicy, display_domain, effective_cap
from bot.slack import ids
from bot.slack.blocks import Block, actions, button, context, divider, header, option, plain
from bot.slack.blocks import section as text_section
from bot.slack.render.connect import escape_mrkdwn
from bot.slack.render.notify import status_lines
from bot.slack.render.status import history_blocks, scheduled_blocks
from bot.slack.wording import LANGUAGES, Texts
from bot.store.models import Link, OutboxEmail

HOME_BLOCKS_MAX = 100
SENDERS_SHOWN = 20
DOMAINS_SHOWN = 30
SIGNATURES_SHOWN = 10
TEMPLATES_SHOWN = 20
SCHEDULED_SHOWN = 10  # two blocks each
AUTO = "auto"


@dataclass(frozen=True, kw_only=True)
class HomeState:
    """What the Home tab shows; `policy` only for admins (None hides the admin section)."""

    link: Link | None
    emails: Sequence[OutboxEmail]
    chosen_language: str | None  # None: follows Slack
    slack_language: str
    policy: WorkspacePolicy | None = None
    instance_max_recipients: int = 50
    instance_hourly_cap: int = 200
    # Shown to a linked user only: None is "notifications off".
    notify: NotifyStatus | None = None
    signatures: Sequence[str] = ()  # the sender addresses that have one
    templates: Sequence[str] = ()  # their names
    scheduled: Sequence[OutboxEmail] = ()  # soonest first


def home_view(t: Texts, state: HomeState) -> Block:
    blocks: list[Block] = [header(t("home.title"))]
    blocks += _link_blocks(t, state.link)
    blocks += [divider(), *_language_blocks(t, state)]
    if state.link is not None:
        blocks += [divider(), *notify_blocks(t, state.notify)]
        blocks += [divider(), *writing_blocks(t, state.signatures, state.templates)]
        if state.scheduled:
            blocks += [divider(), *_scheduled_blocks(t, state.scheduled)]
    blocks += [divider(), *history_blocks(t, state.emails)]
    if state.policy is not None:
        blocks += [divider(), *policy_blocks(t, state)]
    return {"type": "home", "blocks": blocks[:HOME_BLOCKS_MAX]}


def _link_blocks(t: Texts, link: Link | None) -> list[Block]:
    if link is None:
        return [
            text_section(t("home.not_linked")),
            actions(
                button(t("connect.button"), action_id=ids.OPEN_CONNECT_ACTION, style="primary")
            ),
        ]
    senders = link.senders or []
    lines = [
        f"• {escape_mrkdwn(str(s.get('sender') or s.get('email')))}"
        for s in senders[:SENDERS_SHOWN]
    ]
    if len(senders) > SENDERS_SHOWN:
        lines.append(t("home.more_senders", count=len(senders) - SENDERS_SHOWN))
    addresses = t("home.senders") + "\n" + "\n".join(lines) if lines else t("status.no_senders")
    return [
        text_section(t("home.linked", host=escape_mrkdwn(link.portal_host))),
        text_section(addresses),
        actions(
            button(t("home.write"), action_id=ids.HOME_WRITE_ACTION, style="primary"),
            {
                **button(t("home.disconnect"), action_id=ids.HOME_DISCONNECT_ACTION),
                "confirm": {
                    "title": plain(t("home.disconnect_confirm_title"), 100),
                    "text": plain(t("home.disconnect_confirm_text"), 300),
                    "confirm": plain(t("home.disconnect_confirm_yes"), 30),
                    "deny": plain(t("home.disconnect_confirm_no"), 30),
                    "style": "danger",
                },
            },
        ),
    ]


def notify_blocks(t: Texts, status: NotifyStatus | None) -> list[Block]:
    """On, paused (with why) or off, with the buttons that change it."""
    title = header(t("home.notify_title"))
    on = button(t("home.notify_on"), action_id=ids.HOME_NOTIFY_ON_ACTION, style="primary")
    if status is None:
        return [title, text_section(t("home.notify_off")), actions(on)]
    off = button(t("home.notify_turn_off"), action_id=ids.HOME_NOTIFY_OFF_ACTION)
    if status.subscription.state == "paused":
        resume = button(t("home.notify_resume"), action_id=ids.HOME_NOTIFY_ON_ACTION)
        buttons = [resume, off]
    else:
        buttons = [off]
    return [title, text_section("\n".join(status_lines(t, status))), actions(*buttons)]


def writing_blocks(t: Texts, signatures: Sequence[str], templates: Sequence[str]) -> list[Block]:
    """Which addresses have a signature and the templates' names, with Edit and Add."""
    shown = ", ".join(escape_mrkdwn(a) for a in signatures[:SIGNATURES_SHOWN])
    if len(signatures) > SIGNATURES_SHOWN:
        shown += " " + t("home.more_signatures", count=len(signatures) - SIGNATURES_SHOWN)
    names = ", ".join(f"“{escape_mrkdwn(n)}”" for n in templates[:TEMPLATES_SHOWN])
    lines = [
        t("home.signatures", addresses=shown) if signatures else t("home.no_signatures"),
        t("home.templates", names=names) if templates else t("home.no_templates"),
    ]
    if len(templates) > TEMPLATES_SHOWN:
        lines.append(t("home.more_templates", count=len(templates) - TEMPLATES_SHOWN))
    return [
        header(t("home.writing_title")),
        text_section("\n".join(lines)),
        actions(
            button(t("home.signature_edit"), action_id=ids.SIGNATURE_OPEN_ACTION),
            # The same button as `/b24mail templates` has, handled by the same listener.
            button(t("templates.add"), action_id=ids.TEMPLATE_ADD_ACTION, value="add"),
        ),
    ]


def _scheduled_blocks(t: Texts, emails: Sequence[OutboxEmail]) -> list[Block]:
    blocks = scheduled_blocks(t, emails, limit=SCHEDULED_SHOWN)
    if len(emails) > SCHEDULED_SHOWN:
        blocks.append(context(t("home.more_scheduled", count=len(emails) - SCHEDULED_SHOWN)))
    return blocks


def _language_blocks(t: Texts, state: HomeState) -> list[Block]:
    auto = option(t("home.language_auto", language=t(f"lang.name.{state.slack_language}")), AUTO)
    options = [auto, *(option(t(f"lang.name.{code}"), code) for code in LANGUAGES)]
    chosen = next((o for o in options if o["value"] == (state.chosen_language or AUTO)), auto)
    return [
        {
            "type": "section",
            "block_id": "home_language",
            "text": {"type": "mrkdwn", "text": t("home.language")},
            "accessory": {
                "type": "static_select",
                "action_id": ids.HOME_LANGUAGE_ACTION,
                "options": options,
                "initial_option": chosen,
            },
        }
    ]


def policy_blocks(t: Texts, state: HomeState) -> list[Block]:
    policy = state.policy or WorkspacePolicy()
    return [
        header(t("home.policy_title")),
        text_section("\n".join(policy_lines(t, policy, state))),
        actions(button(t("home.policy_edit"), action_id=ids.HOME_POLICY_ACTION)),
        context(t("home.policy_admins_only")),
    ]


def policy_lines(t: Texts, policy: WorkspacePolicy, state: HomeState) -> list[str]:
    return [
        t("home.policy_allowed", domains=_domains(t, policy.allowed_domains)),
        t("home.policy_blocked", domains=_domains(t, policy.blocked_domains)),
        t(
            "home.policy_max_recipients",
            count=effective_cap(policy.max_recipients, state.instance_max_recipients),
        ),
        t(
            "home.policy_hourly_cap",
            count=effective_cap(policy.hourly_cap, state.instance_hourly_cap),
        ),
        t("home.policy_confirm_on" if policy.confirm_outside else "home.policy_confirm_off"),
        t("home.policy_audit_channel", channel=f"<#{policy.audit_channel}>")
        if policy.audit_channel
        else t("home.policy_no_audit_channel"),
    ]


def _domains(t: Texts, domains: Sequence[str]) -> str:
    if not domains:
        return t("home.policy_any")
    shown = ", ".join(f"`{escape_mrkdwn(display_domain(d))}`" for d in domains[:DOMAINS_SHOWN])
    rest = len(domains) - DOMAINS_SHOWN
    return shown + (" " + t("home.more_domains", count=rest) if rest > 0 else "")


def language_choice(value: Any) -> str | None:
    """The Home tab's language option → the stored choice (None: follow Slack)."""
    return value if value in LANGUAGES else None
