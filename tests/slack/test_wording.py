"""The catalogues (bot/slack/locales/*.po) agree, and everything built from them fits Slack.

Every key is in both languages with the same placeholders and the right number of plural forms;
every modal and message renders in English and Russian, with realistic and worst-case data,
within Slack's limits, with nothing left unformatted and no English left in the Russian.
"""

from __future__ import annotations

import json
import re
import string
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from bot.bitrix24 import Bitrix24Error, Message, MessagePage
from bot.mail.compose import FieldProblem
from bot.mail.errors import MailError, SendingCapReached
from bot.mail.message_actions import ACTION_KINDS, ActionDone
from bot.mail.policy import WorkspacePolicy, normalize_domain
from bot.mail.replying import ReplyDraft
from bot.slack import ids
from bot.slack.blocks import BUTTON_TEXT_MAX, TITLE_MAX
from bot.slack.error_handler import handle_listener_error
from bot.slack.language import TEXTS_IN_CONTEXT
from bot.slack.metadata import ViewOrigin
from bot.slack.render.card import email_card
from bot.slack.render.compose import Prefill, compose_modal, inline_errors
from bot.slack.render.connect import connect_modal, connect_prompt, connected_view, help_blocks
from bot.slack.render.connect import status_blocks as link_status_blocks
from bot.slack.render.forward import forward_modal
from bot.slack.render.home import HomeState, home_view
from bot.slack.render.inbox import inbox_blocks
from bot.slack.render.message_actions import action_done_text, action_failed_text, event_modal
from bot.slack.render.policy import confirm_gone_view, confirm_outside_view, policy_modal
from bot.slack.render.reply import (
    ReplyForm,
    hint_option,
    loading_modal,
    problem_modal,
    reply_modal,
    target_option,
)
from bot.slack.render.status import history_blocks, scheduled_blocks, status_message
from bot.slack.render.writing import (
    draft_offer_blocks,
    drafts_blocks,
    signature_modal,
    template_modal,
    templates_blocks,
)
from bot.slack.wording import CATALOGUES, LANGUAGES, Texts, catalogue_path
from bot.store.models import Link, OutboxEmail
from bot.store.outbox import OutboxStatus
from tests.fakes.block_kit import block_errors

ROOT = Path(__file__).resolve().parents[2]
MESSAGE_BLOCKS = 50
MODAL_BLOCKS = 100
INLINE_ERROR_MAX = 2000


def raw(language: str) -> Catalog:
    with catalogue_path(language).open("rb") as fp:
        return read_po(fp, locale=language)


def entries(language: str) -> dict[str, Any]:
    return {(m.id[0] if isinstance(m.id, tuple) else m.id): m for m in raw(language) if m.id}


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def forms(entry: Any) -> tuple[str, ...]:
    return tuple(entry.string) if isinstance(entry.string, tuple | list) else (entry.string,)


# --- (a) the catalogues agree ------------------------------------------------------------------


def test_both_catalogues_have_the_same_keys() -> None:
    """No key only in one language (a missing one would show English to a Russian reader)."""
    assert set(entries("en")) == set(entries("ru"))
    assert len(entries("en")) > 150


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_empty_or_fuzzy_entries(language: str) -> None:
    """gettext skips empty and fuzzy entries: each would silently fall back to English."""
    for key, entry in entries(language).items():
        assert not entry.fuzzy, key
        assert all(f.strip() for f in forms(entry)), key
        assert set(CATALOGUES[language].messages) >= {key}


def test_placeholders_match_english() -> None:
    """Every form of every Russian text has exactly the {fields} of the English one."""
    english, russian = entries("en"), entries("ru")
    for key, entry in english.items():
        expected = set().union(*(fields(f) for f in forms(entry)))
        for form in forms(russian[key]):
            assert fields(form) == expected, (key, form)
        for form in forms(entry):
            assert fields(form) == expected, (key, form)


@pytest.mark.parametrize(("language", "count"), [("en", 2), ("ru", 3)])
def test_plural_entries_have_the_language_s_number_of_forms(language: str, count: int) -> None:
    """The Plural-Forms header is CLDR's, and every plural entry has that many forms."""
    catalog = raw(language)
    assert catalog.num_plurals == count
    assert catalog.plural_forms == Catalog(locale=language).plural_forms
    plural = [m for m in catalog if m.id and isinstance(m.id, tuple)]
    assert {m.id[0] for m in plural} >= {"count.to", "count.cc", "count.bcc", "recipients.more"}
    for entry in plural:
        assert len(forms(entry)) == count, entry.id
    singular_keys = {m.id for m in entries("en").values() if isinstance(m.id, str)}
    assert all(isinstance(m.id, str) for m in catalog if m.id in singular_keys)


@pytest.mark.parametrize("language", LANGUAGES)
def test_texts_stay_within_the_limits_the_catalogue_states(language: str) -> None:
    """`Slack limit: at most N characters` comments (titles 24, buttons 75, …) hold in both."""
    limited = 0
    for key, entry in entries("en").items():
        for comment in entry.auto_comments:
            found = re.search(r"at most (\d+) characters", comment)
            if found:
                limited += 1
                for form in forms(entries(language)[key]):
                    assert len(form) <= int(found.group(1)), (language, key, form)
    assert limited >= 30


def test_every_key_the_code_names_exists() -> None:
    """Literal keys in bot/ (t("…"), t.plural("…"), t.error("…")) are all in the catalogue."""
    pattern = re.compile(r"""\bt(?:\.plural|\.error)?\(\s*f?["']([a-z_]+\.[a-z_.]+)["']""")
    used: set[str] = set()
    for path in (ROOT / "bot").rglob("*.py"):
        used |= set(pattern.findall(path.read_text()))
    assert len(used) > 60
    assert used <= set(CATALOGUES["en"].messages), used - set(CATALOGUES["en"].messages)


def _error_codes() -> set[str]:
    def walk(cls: type) -> Iterator[type]:
        yield cls
        for sub in cls.__subclasses__():
            yield from walk(sub)

    codes = {getattr(c, "code", None) for c in [*walk(Bitrix24Error), *walk(MailError)]}
    codes |= {"webhook_not_https", "webhook_forbidden_host", "webhook_has_userinfo", "gave_up"}
    codes.add("webhook_has_query")
    bases = {"bitrix24_error", "mail_error", "other_portal"}  # abstract, or explained elsewhere
    return {c for c in codes if isinstance(c, str)} - bases


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_error_code_has_its_own_explanation(language: str) -> None:
    """No error code falls back to the generic "something went wrong"."""
    messages = CATALOGUES[language].messages
    missing = {code for code in _error_codes() if f"error.{code}" not in messages}
    assert not missing


def test_the_po_files_ship_with_the_package() -> None:
    """package-data names the catalogues, so a wheel (not only a checkout) can speak Russian."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["bot"]
    for language in LANGUAGES:
        relative = str(Path(str(catalogue_path(language))).relative_to(ROOT / "bot"))
        assert any(fnmatch(relative, p) for p in patterns), relative
    assert "babel" in " ".join(config["project"]["dependencies"]).lower()
    assert not (ROOT / "bot" / "slack" / "wording" / "en.py").exists()


def test_a_key_missing_in_russian_falls_back_to_english(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key not (yet) translated shows the English text instead of failing."""
    ru = CATALOGUES["ru"]
    messages = dict(ru.messages)
    del messages["help.title"]
    monkeypatch.setitem(CATALOGUES, "ru", type(ru)("ru", messages, ru.plural_index, 3))
    assert Texts("ru")("help.title") == Texts("en")("help.title")
    assert Texts("ru")("compose.title") == "Новое письмо"


def test_unknown_language_is_english() -> None:
    assert Texts("de").locale == "en"
    assert Texts("de")("compose.title") == "New e-mail"


# --- (c) plural forms ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "word"),
    [
        (1, "получатель"),
        (2, "получателя"),
        (5, "получателей"),
        (11, "получателей"),
        (21, "получатель"),
        (22, "получателя"),
        (25, "получателей"),
        (111, "получателей"),
        (0, "получателей"),
        (104, "получателя"),
        (112, "получателей"),
    ],
)
def test_russian_recipient_counts(n: int, word: str) -> None:
    """1 получатель / 2 получателя / 5 получателей, and the teens and hundreds right."""
    t = Texts("ru")
    assert t.plural("count.recipients", n) == f"{n} {word}"
    assert t.plural("count.to", n) == f"{n} {word} в «Кому»"


@pytest.mark.parametrize(
    ("n", "text"), [(1, "1 recipient"), (2, "2 recipients"), (0, "0 recipients")]
)
def test_english_recipient_counts(n: int, text: str) -> None:
    assert Texts("en").plural("count.recipients", n) == text


# --- dates and times in the reader's language and time zone ------------------------------------

MOMENT = datetime(2026, 3, 5, 11, 5, tzinfo=UTC)


def test_plain_text_dates_are_in_the_readers_zone_and_language() -> None:
    """Where Slack's date tokens cannot be used, the reader's time zone and words are."""

    def shown(text: str) -> str:
        return text.replace("\u202f", " ")  # CLDR puts narrow no-break spaces in some formats

    moscow = Texts("ru", time_zone="Europe/Moscow")
    assert shown(moscow.format_datetime(MOMENT)) == "5 мар. 2026 г., 14:05 (UTC+3)"
    assert shown(moscow.format_time(MOMENT)) == "14:05 (UTC+3)"
    assert shown(moscow.format_date(MOMENT)) == "5 мар. 2026 г."
    new_york = Texts("en", time_zone="America/New_York")
    assert shown(new_york.format_datetime(MOMENT)) == "Mar 5, 2026, 6:05 AM (UTC-5)"
    assert shown(Texts().format_time(MOMENT.replace(tzinfo=None))) == "11:05 AM (UTC)"
    # A zone this machine does not know: Slack's offset still places it.
    odd = Texts("ru", time_zone="Mars/Olympus", tz_offset=19800)
    assert odd.format_time(MOMENT) == "16:35 (UTC+5:30)"


# --- (b) every modal and message in both languages, within Slack's limits ---------------------

LONG_HOST = "a-very-long-portal-name-of-a-company-with-a-long-name-" + "x" * 120 + ".bitrix24.ru"
LONG_SUBJECT = "Квартальный отчёт <важно> & *срочно* " + "очень длинная тема письма " * 9
LONG_NAME = "Константин Константинопольский-Длиннофамильный"
LONG_SENDER = f"{LONG_NAME} <konstantin.konstantinopolsky@{LONG_HOST}>"
RECIPIENTS_50 = [f"Получатель Номер {i} <recipient.number.{i}@{LONG_HOST}>" for i in range(50)]
SENDERS = [
    {"sender": f"{LONG_NAME} {i} <s{i}@{LONG_HOST}>", "email": f"s{i}@corp.example"}
    for i in range(120)
]
FEW_SENDERS = [{"sender": "Alice Smith <alice@corp.example>", "email": "alice@corp.example"}]
RICH_BODY = {
    "type": "rich_text",
    "elements": [
        {"type": "rich_text_section", "elements": [{"type": "text", "text": "Добрый день!"}]}
    ],
}


def texts(language: str) -> Texts:
    return Texts(language, time_zone="Europe/Moscow" if language == "ru" else "America/New_York")


def email_row(
    status: str, *, to: list[str] = RECIPIENTS_50, error_code: str | None = None, **extra: Any
) -> OutboxEmail:
    now = datetime(2026, 3, 5, 11, 5, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "submission_key": "V1:h1",
        "enterprise_id": "",
        "team_id": "T0001",
        "slack_user_id": "U0001",
        "kind": "send",
        "sender": LONG_SENDER,
        "to_addrs": to,
        "cc_addrs": RECIPIENTS_50[:21],
        "bcc_addrs": RECIPIENTS_50[:2],
        "subject": LONG_SUBJECT,
        "body_html": "<p>x</p>",
        "result_channel": "C0001",
        "status": status,
        "attempts": 3,
        "next_attempt_at": now + timedelta(minutes=2),
        "deadline_at": now + timedelta(minutes=30),
        "error_code": error_code,
        "created_at": now,
        "updated_at": now,
        "sent_at": now,
    }
    values.update(extra)
    return OutboxEmail(**values)


def message(n: int = 1, **extra: Any) -> Message:
    data: dict[str, Any] = {
        "id": 1000 + n,
        "subject": LONG_SUBJECT,
        "from": LONG_SENDER,
        "to": ", ".join(RECIPIENTS_50),
        "cc": ", ".join(RECIPIENTS_50[:20]),
        "date": "2026-03-05T11:05:00+00:00",
        "hasAttachments": True,
        "url": f"https://{LONG_HOST}/mail/message/{1000 + n}",
        "body": "<p>" + "Текст письма с подробностями. " * 200 + "</p>",
    }
    data.update(extra)
    return Message.model_validate(data)


def modals(t: Texts) -> dict[str, dict[str, Any]]:
    origin = ViewOrigin(channel_id="C0001", thread_ts="1700000000.000100")
    draft = ReplyDraft(
        sender_email="s3@corp.example",
        to=", ".join(RECIPIENTS_50[:3]),
        cc=", ".join(RECIPIENTS_50),
        subject="Re: " + LONG_SUBJECT,
    )
    form = ReplyForm(origin=origin, body=RICH_BODY, bcc=", ".join(RECIPIENTS_50[:5]))
    return {
        "connect": connect_modal(t, private_metadata=origin.encode()),
        "connected": connected_view(t, host=LONG_HOST, b24_user_id=123456789, senders=SENDERS),
        "compose": compose_modal(
            t,
            senders=SENDERS,
            prefill=Prefill(
                to="\n".join(RECIPIENTS_50),
                cc=", ".join(RECIPIENTS_50),
                subject=LONG_SUBJECT,
                body=RICH_BODY,
                post_to="C0001",
            ),
            private_metadata=origin.encode(),
        ),
        "compose_no_senders": compose_modal(
            t, senders=[], prefill=Prefill(), private_metadata=origin.encode()
        ),
        "reply": reply_modal(
            t,
            senders=SENDERS,
            form=form.with_changes(reply_all=True, show_post_to=True, post_to="C0001"),
            draft=draft,
            original=message(),
            reply_all_cc=", ".join(RECIPIENTS_50),
        ),
        "reply_choose": reply_modal(
            t,
            senders=FEW_SENDERS,
            form=form.with_changes(choose_target=True, notice=t("reply.no_access")),
            draft=ReplyDraft(sender_email="alice@corp.example"),
        ),
        "forward": forward_modal(
            t,
            senders=SENDERS,
            last_sender=None,
            origin=origin.model_copy(update={"portal": LONG_HOST}),
            original=message(),
            show_post_to=True,
        ),
        "event": event_modal(
            t, origin=origin.model_copy(update={"message_id": 7, "ephemeral": True}), now=MOMENT
        ),
        "compose_later": compose_modal(
            t,
            senders=SENDERS,
            prefill=Prefill(subject=LONG_SUBJECT, body=RICH_BODY, send_at=MOMENT),
            private_metadata=origin.encode(),
            templates=[(n, f"Шаблон {n} " + "x" * 80) for n in range(60)],
        ),
        "signature": signature_modal(
            t, senders=SENDERS, signatures={str(s["email"]).lower(): RICH_BODY for s in SENDERS}
        ),
        "template": template_modal(t),
        "reply_loading": loading_modal(t, private_metadata=origin.encode()),
        "reply_problem": problem_modal(
            t, t("reply.other_portal", portal=LONG_HOST, host=LONG_HOST)
        ),
        "policy": policy_modal(
            t, WORST_POLICY, instance_max_recipients=50, instance_hourly_cap=200
        ),
        "policy_empty": policy_modal(
            t, WorkspacePolicy(), instance_max_recipients=50, instance_hourly_cap=200
        ),
        "confirm_outside": confirm_outside_view(
            t,
            outside=RECIPIENTS_50 + RECIPIENTS_50,
            allowed=WORST_POLICY.allowed_domains,
            private_metadata="0" * 36,
        ),
        "confirm_gone": confirm_gone_view(t),
    }


WORST_POLICY = WorkspacePolicy(
    allowed_domains=tuple(
        normalize_domain(f"*.{'поддомен' * 6}{i}.{'пример' * 5}.рф") for i in range(200)
    ),
    blocked_domains=tuple(normalize_domain(f"blocked{i}.{'x' * 60}.example") for i in range(200)),
    max_recipients=5,
    hourly_cap=7,
    confirm_outside=True,
    audit_channel="C0AUDIT",
)


def messages(t: Texts) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {
        "help": help_blocks(t),
        "help_unknown": help_blocks(t, unknown="x" * 40 + "`<@U1>`", linked=False),
        "connect_prompt": connect_prompt(t),
        "link_status": link_status_blocks(
            t,
            host=LONG_HOST,
            b24_user_id=123456789,
            senders=SENDERS,
            last_checked=t.format_datetime(MOMENT),
            linked_at=t.format_datetime(MOMENT),
        ),
        "link_status_empty": link_status_blocks(
            t, host="corp.bitrix24.ru", b24_user_id=1, senders=[], last_checked=None, linked_at="x"
        ),
        "history": history_blocks(
            t,
            [
                email_row(s, error_code=None)
                for s in (
                    OutboxStatus.QUEUED,
                    OutboxStatus.SENDING,
                    OutboxStatus.SENT,
                    OutboxStatus.FAILED,
                )
            ]
            * 3,
        ),
        "history_empty": history_blocks(t, []),
        "history_later": history_blocks(
            t,
            [
                email_row(OutboxStatus.QUEUED, attempts=0, not_before=MOMENT, send_at=MOMENT),
                email_row(OutboxStatus.CANCELLED, cancelled_at=MOMENT),
            ]
            * 5,
        ),
        "scheduled": scheduled_blocks(
            t, [email_row(OutboxStatus.QUEUED, attempts=0, not_before=MOMENT, send_at=MOMENT)] * 20
        ),
        "scheduled_empty": scheduled_blocks(t, []),
        "drafts": drafts_blocks(
            t,
            [
                (f"d{n}", MOMENT, {"to": ", ".join(RECIPIENTS_50), "subject": LONG_SUBJECT})
                for n in range(20)
            ],
            kept_days=30,
        ),
        "drafts_bare": drafts_blocks(t, [("d", MOMENT, {})], kept_days=1),
        "drafts_empty": drafts_blocks(t, [], kept_days=30),
        "draft_offer": draft_offer_blocks(t, "d", {"subject": LONG_SUBJECT, "to": "a@b.example"}),
        "templates": templates_blocks(t, [(n, "x" * 75, LONG_SUBJECT) for n in range(20)]),
        "templates_empty": templates_blocks(t, []),
    }
    out["status_undo"] = status_message(
        t,
        email_row(OutboxStatus.QUEUED, attempts=0, not_before=MOMENT + timedelta(seconds=10)),
    )[1]
    out["status_scheduled"] = status_message(
        t, email_row(OutboxStatus.QUEUED, attempts=0, not_before=MOMENT, send_at=MOMENT)
    )[1]
    out["status_cancelled"] = status_message(t, email_row(OutboxStatus.CANCELLED))[1]
    for state in (OutboxStatus.QUEUED, OutboxStatus.SENT):
        out[f"status_{state}"] = status_message(t, email_row(state))[1]
    for code in ("rate_limited", "operation_time_limit", "timeout", "unknown_code"):
        out[f"status_retrying_{code}"] = status_message(
            t, email_row(OutboxStatus.QUEUED, error_code=code)
        )[1]
    for code in sorted(_error_codes()):
        row = email_row(
            OutboxStatus.FAILED, error_code=code, error_detail="Ошибка портала: " + "x" * 1900
        )
        note = t("status_msg.dm_note", channel="C0001", reason=t("post_reason.not_in_channel"))
        explanation = t.error(
            code, host=LONG_HOST, new_host=LONG_HOST, reset="14:05", cap=200, minutes=30
        )
        if code == "gave_up":
            explanation = t("error.gave_up", minutes=30)
        out[f"status_failed_{code}"] = status_message(
            t, row, explanation=explanation, dm_note=note
        )[1]
    page = MessagePage(items=[message(i) for i in range(10)], page=7, limit=10, has_more=True)
    out["inbox"] = inbox_blocks(t, page, search="поиск " * 100)[1]
    out["inbox_no_search"] = inbox_blocks(t, page, search=None)[1]
    for n, search in ((1, None), (1, "x" * 400), (2, None)):
        out[f"inbox_empty_{n}_{bool(search)}"] = inbox_blocks(
            t, MessagePage(items=[], page=n, limit=10, has_more=False), search=search
        )[1]
    emails = [email_row(s) for s in ("sent", "failed", "queued", "sending")] * 3
    link = Link(
        team_id="T1",
        slack_user_id="U1",
        portal_host=LONG_HOST,
        b24_user_id=1,
        secret_encrypted="x",
        senders=SENDERS,
    )
    for name, state in {
        "home_admin": HomeState(
            link=link,
            emails=emails[:10],
            chosen_language=None,
            slack_language=t.locale,
            policy=WORST_POLICY,
        ),
        "home_admin_no_policy": HomeState(
            link=link,
            emails=[],
            chosen_language="ru",
            slack_language="en",
            policy=WorkspacePolicy(),
        ),
        "home_unlinked": HomeState(
            link=None, emails=[], chosen_language="en", slack_language=t.locale
        ),
    }.items():
        out[name] = home_view(t, state)["blocks"]
    out["card"] = email_card(t, message(), portal=LONG_HOST, shared_by="U0001")[1]
    for kind in ACTION_KINDS:
        done = ActionDone(kind=kind, message_id=7, object_id=123456789)
        texts_shown = [
            action_done_text(t, done, user_id="U0001", start=MOMENT, end=MOMENT),
            action_failed_text(t, kind, user_id="U0001", reason=t("error.outcome_unknown")),
        ]
        if kind == "chat":
            existing = ActionDone(kind=kind, message_id=7, object_id=5, existing=True)
            texts_shown.append(action_done_text(t, existing, user_id="U0001", start=None, end=None))
        out[f"action_{kind}"] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": x}} for x in texts_shown
        ]
    out["card_bare"] = email_card(
        t, message(subject="", body=None, date=None, url=None), portal="p", shared_by="U0001"
    )[1]
    return out


def unformatted(payload: Any) -> list[str]:
    """{placeholders} left in the rendered text (Slack's own date tokens aside)."""
    text = re.sub(r"<!date\^[^>]*>", "", json.dumps(payload, ensure_ascii=False))
    return re.findall(r"\{[a-z_]+\}", text)


def english_fragments() -> set[str]:
    """Pieces of English text that must never show up in a Russian payload."""
    russian = " ".join(
        f for m in CATALOGUES["ru"].messages.values() for f in (m if isinstance(m, tuple) else (m,))
    )
    found: set[str] = set()
    for value in CATALOGUES["en"].messages.values():
        for form in value if isinstance(value, tuple) else (value,):
            for piece in re.split(r"\{[a-z_]+\}|`[^`]*`|\*|\n", form):
                piece = piece.strip(" .,:;()")
                if len(piece) >= 12 and piece not in russian:
                    found.add(piece)
    return found


def button_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        e["text"]["text"]
        for b in blocks
        if b.get("type") == "actions"
        for e in b.get("elements", [])
        if e.get("type") == "button"
    ]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_modal_fits_slack(language: str) -> None:
    """Titles, submit and close are whole (≤ 24, never clipped); blocks within Slack's limits."""
    t = texts(language)
    catalogue = set(CATALOGUES[language].messages.values())
    for name, view in modals(t).items():
        assert block_errors(view["blocks"], "/view/blocks", limit=MODAL_BLOCKS) == [], name
        for part in ("title", "submit", "close"):
            if part in view:
                label = view[part]["text"]
                assert len(label) <= TITLE_MAX, (name, label)
                assert label in catalogue, (name, part, label)  # not clipped
        if any(b["type"] == "input" for b in view["blocks"]):
            assert "submit" in view, name
        assert len(view["private_metadata"]) <= 3000, name
        assert unformatted(view) == [], name


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_fits_slack(language: str) -> None:
    """Messages within 50 blocks and every text limit; buttons whole; nothing unformatted."""
    t = texts(language)
    catalogue = set(CATALOGUES[language].messages.values())
    for name, blocks in messages(t).items():
        assert block_errors(blocks, limit=MESSAGE_BLOCKS) == [], name
        for label in button_texts(blocks):
            assert len(label) <= BUTTON_TEXT_MAX and label in catalogue, (name, label)
        assert unformatted(blocks) == [], name


def test_nothing_english_is_left_in_the_russian_renders() -> None:
    """Every text the Russian modals and messages show comes from the Russian catalogue."""
    t = texts("ru")
    payload = json.dumps([modals(t), messages(t)], ensure_ascii=False)
    leaked = sorted(f for f in english_fragments() if f in payload)
    assert leaked == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_inline_errors_fit_under_their_field(language: str) -> None:
    """Every validation message, with worst-case values, stays within the inline error limit."""
    t = texts(language)
    problems = [
        FieldProblem("to", "invalid_addresses", {"values": ", ".join(RECIPIENTS_50[:10])}),
        FieldProblem("cc", "too_many_recipients", {"count": 151, "cap": 50}),
        FieldProblem("bcc", "no_recipients"),
        FieldProblem("from", "unknown_sender"),
        FieldProblem("subject", "subject_too_long", {"length": 251, "cap": 250}),
        FieldProblem("body", "body_too_long", {"length": 120_000, "cap": 100_000}),
        FieldProblem("reply_target", "required"),
    ]
    for problem in problems:
        errors = inline_errors(t, [problem])
        (text,) = errors.values()
        assert 0 < len(text) <= INLINE_ERROR_MAX and unformatted(text) == [], problem
    for code in _error_codes():
        text = t.error(code, host=LONG_HOST, new_host=LONG_HOST, reset="14:05", cap=200, minutes=30)
        assert len(text) <= INLINE_ERROR_MAX and unformatted(text) == [], code


@pytest.mark.parametrize("language", LANGUAGES)
def test_options_and_hints_fit(language: str) -> None:
    """Search results and hints are within Slack's 75 characters; the date is the reader's."""
    t = texts(language)
    option = target_option(t, message())
    assert len(option["text"]["text"]) <= 75
    assert ("2026" in option["text"]["text"]) or option["text"]["text"].endswith("…")
    for key in (
        "reply.search_more",
        "reply.search_none",
        "reply.search_failed",
        "reply.search_not_linked",
    ):
        text = hint_option(t, key)["text"]["text"]
        assert text == t(key) and len(text) <= 75
    short = target_option(t, message(subject="Отчёт", **{"from": "Анна <a@b.ru>"}))
    expected = "5 мар. 2026 г." if language == "ru" else "Mar 5, 2026"
    assert short["text"]["text"].replace("\u202f", " ").endswith(expected)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_unexpected_error_view_speaks_the_users_language(language: str) -> None:
    """The global error handler uses the Texts the listener left in Bolt's context."""
    t = texts(language)
    response = await handle_listener_error(
        RuntimeError("boom"), {"type": "view_submission"}, {TEXTS_IN_CONTEXT: t}
    )
    view = json.loads(response.body)["view"]
    assert view["close"]["text"] == t("modal.close")
    assert len(view["title"]["text"]) <= TITLE_MAX
    assert t("error.unknown", error_id="XXX").split("`")[0] in view["blocks"][0]["text"]["text"]
    capped = await handle_listener_error(
        SendingCapReached(),
        {"type": "view_submission", "view": {"state": {"values": {ids.TO_BLOCK: {}}}}},
        {TEXTS_IN_CONTEXT: t},
    )
    assert json.loads(capped.body)["errors"][ids.TO_BLOCK] == t("error.sending_cap_any")
