"""English and Russian, per user: through the real HTTP endpoint, the fake Slack and the portal.

The language follows the Slack locale (users.info, cached) unless `/b24mail lang` chose one;
the first lookup never holds an ack for long; status messages speak their owner's language.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.background import Background
from bot.identity import SlackUser
from bot.slack import ids
from bot.slack.clients import SlackClients
from bot.slack.language import LanguageService, language_of_locale, parse_choice
from bot.store.base import utcnow
from bot.store.db import create_session_factory
from bot.store.preferences import PreferenceRepository, UserPreference
from tests.fakes import bitrix24_portal as fake_portal
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.slack.test_compose import ALICE, compose_values, link, submission
from tests.slack.test_wording import english_fragments
from tests.support.app import RunningApp, running_app

BOB = SlackUser(team_id="T0001", user_id="U0002")


def shown(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False)


def english_in(payload: Any) -> list[str]:
    text = shown(payload)
    return sorted(f for f in english_fragments() if f in text)


def profile_lookups(slack: FakeSlack, user_id: str = "U0001") -> list[Any]:
    """users.info calls asking for the locale; the admin check (bot/slack/admins.py) asks
    users.info without it, for the Home tab and policy changes, and is not counted."""
    calls = [c for c in slack.calls_to("users.info") if c.args.get("user") == user_id]
    return [c for c in calls if str(c.args.get("include_locale")).lower() in {"1", "true"}]


async def final_status(slack: FakeSlack, *, contains: str, timeout: float = 10.0) -> dict[str, Any]:
    """The status message once its blocks say `contains` (Cyrillic compared as it is)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for (channel, ts), message in slack.messages.items():
            if contains in shown(message.get("blocks")):
                return {**message, "channel": channel, "ts": ts}
        await asyncio.sleep(0.02)
    raise AssertionError(
        f"no status message saying {contains!r}: {shown(list(slack.messages.values()))}"
    )


async def help_text(app: RunningApp, user_id: str = "U0001") -> str:
    return shown(app.json(await app.command("help", user_id=user_id)))


async def test_russian_user_gets_help_compose_errors_and_status_in_russian(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """A ru-RU Slack user: help, the compose modal, inline errors and "Отправлено…" in Russian."""
    slack.add_user("U0001", locale="ru-RU", tz="Europe/Moscow", tz_offset=10800)
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        helped = app.json(await app.command("help"))
        assert "эта справка" in shown(helped)
        assert "`/b24mail lang ru|en|auto`" in shown(helped)
        assert english_in(helped) == []

        assert (await app.command("")).status_code == 200
        opened = await slack.await_for("views.open", lambda c: c.ok)
        view = opened.args["view"]
        assert (view["title"]["text"], view["submit"]["text"], view["close"]["text"]) == (
            "Новое письмо",
            "Отправить",
            "Отмена",
        )
        assert english_in(view) == []

        refused = app.json(
            await app.interactive(submission(compose_values(to="bob@client.example, nope")))
        )
        assert refused["response_action"] == "errors"
        assert refused["errors"][ids.TO_BLOCK] == "Некорректный адрес электронной почты: nope"
        empty = app.json(await app.interactive(submission(compose_values(subject=" "))))
        assert empty["errors"][ids.SUBJECT_BLOCK] == "Заполните это поле."

        await app.interactive(submission(compose_values(), view_id="V200"))
        message = await final_status(slack, contains="Отправлено")
        assert len(profile_lookups(slack)) == 1  # cached after the first request
    blocks = shown(message["blocks"])
    assert ":white_check_mark: Отправлено: *Quarterly report*" in blocks
    assert "1 получатель в «Кому», 0 в копии, 0 в скрытой копии" in blocks
    assert "Кому: Bob &lt;bob@client.example&gt;" in blocks
    assert "(UTC+3)" in blocks  # the fallback of the date token is in the owner's time zone
    assert english_in(message["blocks"]) == []


async def test_lang_command_switches_and_auto_follows_the_locale_again(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """`lang en` answers in English from then on; `lang auto` follows ru-RU again; bad → usage."""
    slack.add_user("U0001", locale="ru-RU")
    async with running_app(engine=engine, slack=slack) as app:
        assert "эта справка" in await help_text(app)

        done = app.json(await app.command("lang en"))["text"]
        assert done.startswith("Done: I will answer you in English")
        assert "this help" in await help_text(app)
        usage = app.json(await app.command("lang"))["text"]
        assert usage.startswith("Language of my answers:") and usage.endswith("Now: English.")

        back = app.json(await app.command("lang auto"))["text"]
        assert back == "Готово: я снова отвечаю на языке вашего Slack (сейчас: русский)."
        assert "эта справка" in await help_text(app)

        wrong = app.json(await app.command("lang klingon"))["text"]
        assert wrong.startswith("Я не знаю язык `klingon`.\nЯзык ответов:")
        assert wrong.endswith("Сейчас: русский, как в вашем Slack.")

        ru = app.json(await app.command("lang RU"))["text"]
        assert ru.startswith("Готово: теперь я отвечаю вам по-русски.")
        slack.add_user("U0001", locale="en-US")  # the Slack locale no longer matters
        assert "эта справка" in await help_text(app)
        assert len(profile_lookups(slack)) == 1


async def test_an_english_user_and_an_unknown_one_are_unaffected(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """en-US stays English; a user Slack does not know is English, and asked about once."""
    slack.add_user("U0001", locale="ru-RU")
    slack.add_user("U0002", locale="en-US")
    async with running_app(engine=engine, slack=slack) as app:
        assert "эта справка" in await help_text(app, "U0001")
        for user_id in ("U0002", "U0404", "U0002", "U0404"):
            text = await help_text(app, user_id)
            assert "this help" in text and "справка" not in text
        assert len(profile_lookups(slack, "U0404")) == 1
        assert len(profile_lookups(slack, "U0002")) == 1


async def test_portal_text_is_only_a_detail_under_our_explanation(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The portal's Russian error text is the labelled context line under our own reason."""
    portal_text = "Не удалось отправить письмо: превышен суточный лимит отправки для ящика"

    def russian_portal(entries: list[dict[str, str]]) -> Exception:
        reply = fake_portal._v3(400, fake_portal.VALIDATION_ERROR, portal_text, entries)
        return fake_portal._ApiError(reply)

    monkeypatch.setattr(fake_portal, "_invalid", russian_portal)
    slack.add_user("U0001", locale="ru-RU")
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        await app.command("help")  # the profile is known before the e-mail is written
        portal.set_send_failure("MESSAGE_SEND_FAILED")
        await app.interactive(submission(compose_values()))
        message = await final_status(slack, contains="Не отправлено")
    blocks = message["blocks"]
    texts = [
        (b["type"], e["text"])
        for b in blocks
        for e in ([b["text"]] if "text" in b else b.get("elements", []))
        if isinstance(e, dict) and "text" in e and isinstance(e["text"], str)
    ]
    reason = next(i for i, (_, text) in enumerate(texts) if text.startswith("*Причина:*"))
    assert texts[reason][1].startswith("*Причина:* Битрикс24 не смог отправить письмо")
    with_portal_text = [i for i, (_, text) in enumerate(texts) if portal_text in text]
    assert len(with_portal_text) == 1
    kind, detail = texts[with_portal_text[0]]
    assert (kind, detail) == ("context", f"Ответ Битрикс24: {portal_text}")
    assert with_portal_text[0] > reason
    assert portal_text not in message["text"]
    assert "Повторить" in shown(blocks) and "Изменить и отправить" in shown(blocks)


async def test_a_slow_first_lookup_does_not_hold_the_ack(
    engine: AsyncEngine, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """users.info slower than the time box: English at once, Russian once the lookup lands."""
    caplog.set_level(logging.INFO, logger="bot.slack.language")
    slack.add_user("U0001", locale="ru-RU")
    # Far beyond the time box (FIRST_LOOKUP_TIME_BOX), however slow the machine.
    slack.slow("users.info", 3.0)
    async with running_app(engine=engine, slack=slack) as app:
        first = await help_text(app)
        # The ack gave up waiting at the time box, not when Slack answered: English, and the
        # time box said so. (No wall-clock bound: a busy machine must not fail this.)
        assert "this help" in first
        assert any("users.info slower than" in r.getMessage() for r in caplog.records)
        await slack.await_for("users.info", timeout=15)
        deadline = time.monotonic() + 10
        while "эта справка" not in await help_text(app):
            assert time.monotonic() < deadline, "the background lookup never landed"
            await asyncio.sleep(0.1)
        assert len(profile_lookups(slack)) == 1


# --- the language service on its own ------------------------------------------------------------


class HeldClient(AsyncWebClient):
    """A real client whose users.info waits for the test's go (an event, not a clock)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.asked = asyncio.Event()
        self.release = asyncio.Event()

    async def users_info(self, **kwargs: Any) -> Any:
        self.asked.set()
        await self.release.wait()
        return await super().users_info(**kwargs)


def service(
    engine: AsyncEngine, background: Background, slack: FakeSlack, **kwargs: Any
) -> LanguageService:
    return LanguageService(
        preferences=PreferenceRepository(sessions=create_session_factory(engine)),
        background=background,
        clients=SlackClients(token=slack.token, base_url=slack.api_url),
        **kwargs,
    )


async def test_an_old_profile_is_refreshed_in_the_background(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """A day-old profile answers at once and is re-read from Slack behind the answer."""
    slack.add_user("U0001", locale="ru-RU", tz="Europe/Moscow")
    background = Background()
    language = service(engine, background, slack, cache_seconds=0)
    preferences = PreferenceRepository(sessions=create_session_factory(engine))
    await preferences.remember_profile(ALICE, locale="en-US", time_zone="UTC", tz_offset=0)
    async with engine.begin() as connection:
        await connection.execute(
            update(UserPreference).values(profile_refreshed_at=utcnow() - timedelta(days=2))
        )
    client = HeldClient(token=slack.token, base_url=slack.api_url)
    # users.info cannot answer before the test lets it: the answer did not wait for it.
    # (The timeout only turns a regression, an answer that waits, into a failure, not a hang.)
    texts = await asyncio.wait_for(language.texts_for(ALICE, client=client), timeout=30)
    assert texts.locale == "en"
    await asyncio.wait_for(client.asked.wait(), timeout=10)
    assert profile_lookups(slack) == []
    client.release.set()
    await background.drain(timeout=10)
    texts = await language.texts_for(ALICE, client=client)
    assert (texts.locale, texts.time_zone) == ("ru", "Europe/Moscow")
    assert len(profile_lookups(slack)) == 1


async def test_options_never_wait_and_slack_outages_are_not_hammered(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """wait=False answers from what is known; a failed lookup is not retried on every request."""
    slack.add_user("U0001", locale="ru-RU")
    background = Background()
    language = service(engine, background, slack)
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    slack.server_error("users.info", times=1)
    assert (await language.texts_for(ALICE, client=client, wait=False)).locale == "en"
    await background.drain(timeout=5)
    for _ in range(3):
        assert (await language.texts_for(ALICE, client=client)).locale == "en"
    await background.drain(timeout=5)
    assert len(slack.calls_to("users.info")) == 1


async def test_status_texts_use_the_owners_language_even_when_unknown_yet(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """The worker asks Slack itself for an owner it has never seen (not on an ack path)."""
    slack.add_user("U0002", locale="ru-RU", tz="Asia/Yekaterinburg")
    background = Background()
    language = service(engine, background, slack)

    class Row:
        id = "e1"
        enterprise_id = ""
        team_id = BOB.team_id
        slack_user_id = BOB.user_id

    texts = await language.texts_for_email(Row())  # type: ignore[arg-type]
    assert (texts.locale, texts.time_zone) == ("ru", "Asia/Yekaterinburg")
    slack.set_down(True)
    await language.choose(BOB, "en")
    assert (await language.texts_for_email(Row())).locale == "en"  # type: ignore[arg-type]
    await background.drain(timeout=5)


@pytest.mark.parametrize(
    ("locale", "language"),
    [
        ("ru-RU", "ru"),
        ("ru", "ru"),
        ("ru_RU", "ru"),
        ("en-GB", "en"),
        ("de-DE", "en"),
        (None, "en"),
    ],
)
def test_slack_locales_map_to_our_languages(locale: str | None, language: str) -> None:
    assert language_of_locale(locale) == language


def test_lang_arguments() -> None:
    assert parse_choice(" RU ") == (True, "ru")
    assert parse_choice("english") == (True, "en")
    assert parse_choice("auto") == (True, None)
    assert parse_choice("") == (False, None)
    assert parse_choice("fr") == (False, None)
