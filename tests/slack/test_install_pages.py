"""b24mail's own install pages (OAuth mode): valid, self-contained, in English and Russian, and
working in a real headless Chromium loaded from the running app."""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.slack.install_pages import (
    failure_page,
    landing_page,
    open_slack_url,
    page_language,
    success_page,
)
from bot.slack.oauth import BOT_SCOPES
from bot.slack.wording import Texts
from tests.fakes.slack_api import FakeSlack
from tests.slack.test_oauth import CLIENT_ID, oauth_app
from tests.support.browser import browser_binaries, headless_chromium

VOID = {"meta", "link", "br", "hr", "img", "input"}


class StrictParser(HTMLParser):
    """Fails on what a validator would flag in our pages: unclosed or mismatched tags, a
    missing doctype, language or charset, and any reference to a resource elsewhere."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.doctype = ""
        self.problems: list[str] = []
        self.links: dict[str, str] = {}
        self.text: list[str] = []
        self.charset = False
        self.lang = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang") or ""
        if tag == "meta" and values.get("charset") == "utf-8":
            self.charset = True
        inline = tag == "link" and (values.get("href") or "").startswith("data:")
        if not inline and (tag in {"script", "img", "link", "iframe", "object", "embed"}):
            self.problems.append(f"<{tag}> would load a resource")
        if "src" in values:
            self.problems.append(f"<{tag}> would load a resource")
        if "style" in values and "url(" in (values["style"] or ""):
            self.problems.append("inline style loads a resource")
        if tag == "a" and values.get("id"):
            self.links[str(values["id"])] = str(values.get("href"))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "url(" in data or "@import" in data:
            self.problems.append("style loads a resource")
        self.text.append(data)


def checked(page: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(page)
    parser.close()
    assert parser.doctype.lower() == "doctype html"
    assert parser.charset and parser.lang in {"en", "ru"}
    assert parser.problems == [] and parser.stack == []
    return parser


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "en"),
        ("", "en"),
        ("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7", "ru"),
        ("en-US,en;q=0.9,ru;q=0.8", "en"),
        ("de-DE,de;q=0.9,ru;q=0.5,en;q=0.4", "ru"),
        ("fr, *;q=0.1", "en"),
        ("ru;q=0, en", "en"),
        ("RU", "ru"),
        ("ru;q=oops", "en"),
    ],
)
def test_the_page_language_follows_accept_language(header: str | None, language: str) -> None:
    assert page_language(header) == language


@pytest.mark.parametrize("language", ["en", "ru"])
def test_every_page_is_valid_self_contained_html(language: str) -> None:
    t = Texts(language)
    url = "https://slack.com/oauth/v2/authorize?state=a&client_id=1.2&scope=commands"
    landing = checked(landing_page(t, install_url=url, scopes=BOT_SCOPES))
    assert landing.links == {"add-to-slack": url}
    text = " ".join(landing.text)
    for scope in BOT_SCOPES:
        assert scope in text
    open_url = open_slack_url(app_id="A1", team_id="T1")
    success = checked(success_page(t, team_name="<Acme & Co>", open_url=open_url))
    assert success.links == {"open-slack": "https://slack.com/app_redirect?app=A1&team=T1"}
    assert "<Acme & Co>" in " ".join(success.text)  # escaped in the HTML, shown as typed
    assert "/b24mail connect" in " ".join(success.text)
    for reason in ("access_denied", "invalid_state", "storage_error"):
        failure = checked(failure_page(t, reason=reason, retry_url="/slack/install"))
        assert failure.links == {"retry": "/slack/install"}


@pytest.fixture(scope="session")
def browser_paths() -> tuple[str, str]:
    found = browser_binaries()
    if isinstance(found, str):
        pytest.skip(f"no headless browser: {found}")
    return found


PAGE_FACTS = """
return {
  title: document.title,
  lang: document.documentElement.lang,
  charset: document.characterSet,
  doctype: document.doctype ? document.doctype.name : null,
  heading: document.querySelector('h1').innerText,
  text: document.body.innerText,
  links: Object.fromEntries(
    Array.from(document.querySelectorAll('a[id]')).map(a => [a.id, a.href])),
  resources: performance.getEntriesByType('resource').map(r => r.name),
  buttonColour: document.querySelector('a.button')
    ? getComputedStyle(document.querySelector('a.button')).backgroundColor : null,
};
"""

EXPECTED = {
    "en-US,en": {
        "landing": "Add to Slack",
        "success": "/b24mail connect",
        "failure": "cancelled",
    },
    "ru-RU,ru": {
        "landing": "Добавить в Slack",
        "success": "/b24mail connect",
        "failure": "отменена",
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("accept_language", list(EXPECTED))
async def test_install_pages_in_a_real_headless_browser(
    engine: AsyncEngine,
    slack: FakeSlack,
    browser_paths: tuple[str, str],
    accept_language: str,
    tmp_path: Path,
) -> None:
    """Landing → (Slack) → success, and a cancelled install's failure page, each loaded by
    Chromium from the running app, in the browser's language, with a screenshot of each."""
    chromium, chromedriver = browser_paths
    expected = EXPECTED[accept_language]
    async with oauth_app(engine, slack) as app:

        def visit() -> dict[str, dict[str, Any]]:
            seen: dict[str, dict[str, Any]] = {}
            with headless_chromium(chromium, chromedriver, language=accept_language) as browser:
                browser.get(f"{app.base_url}/slack/install")
                seen["landing"] = browser.script(PAGE_FACTS)
                browser.screenshot(tmp_path / "landing.png")
                # Slack would now show its consent page and send the browser back with a code
                # for this state; the browser carries the state cookie the landing page set.
                add = urlsplit(seen["landing"]["links"]["add-to-slack"])
                state = parse_qs(add.query)["state"][0]
                code = slack.authorize(team_id="T0042", user_id="U0042", scopes=BOT_SCOPES)
                browser.get(f"{app.base_url}/slack/oauth_redirect?code={code}&state={state}")
                seen["success"] = browser.script(PAGE_FACTS)
                browser.screenshot(tmp_path / "success.png")
                browser.get(f"{app.base_url}/slack/oauth_redirect?error=access_denied")
                seen["failure"] = browser.script(PAGE_FACTS)
                browser.screenshot(tmp_path / "failure.png")
            return seen

        seen = await asyncio.to_thread(visit)
        installed = await app.services.installations.async_find_bot(  # type: ignore[union-attr]
            enterprise_id=None, team_id="T0042"
        )
    assert installed is not None, "the browser's install did not complete"
    language = accept_language[:2]
    for name, facts in seen.items():
        assert facts["lang"] == language and facts["charset"] == "UTF-8", name
        assert facts["doctype"] == "html", name
        assert facts["resources"] == [], (name, facts["resources"])  # nothing from elsewhere
        assert facts["buttonColour"] == "rgb(74, 21, 75)", name  # our inline style applied
        assert expected[name] in facts["text"], (name, facts["text"])
        assert (tmp_path / f"{name}.png").stat().st_size > 5_000
    add = urlsplit(seen["landing"]["links"]["add-to-slack"])
    assert f"{add.scheme}://{add.netloc}{add.path}" == "https://slack.com/oauth/v2/authorize"
    query = parse_qs(add.query)
    assert query["client_id"] == [CLIENT_ID] and query["scope"] == [",".join(BOT_SCOPES)]
    for scope in BOT_SCOPES:
        assert scope in seen["landing"]["text"]
    assert seen["success"]["links"]["open-slack"].startswith("https://slack.com/app_redirect?")
    assert "team=T0042" in seen["success"]["links"]["open-slack"]
    assert seen["failure"]["links"]["retry"] == f"{app.base_url}/slack/install"
