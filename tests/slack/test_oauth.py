"""Multi-workspace OAuth: install flow, state checks, encrypted tokens, per-workspace tokens and
token rotation, through the real HTTP endpoint and the fake Slack; the mode decision."""

from __future__ import annotations

import html
import io
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.identity import SlackUser
from bot.logs import RedactingFormatter
from bot.mail.compose import ValidEmail
from bot.runtime import check, migrate, rotate_keys
from bot.services import build_services
from bot.settings import ConfigurationError
from bot.slack import installation_tables
from bot.slack.installations import EncryptedInstallationStore
from bot.slack.oauth import BOT_SCOPES, STATE_COOKIE, SignedStateStore
from bot.store.base import Base
from bot.store.crypto import SecretBox
from bot.store.models import OutboxEmail
from bot.worker import Worker
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.support.app import RunningApp, make_settings, running_app

# slack_sdk sends the app's credentials with aiohttp's BasicAuth, which aiohttp deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "1111111111.2222222222"
CLIENT_SECRET = "0123456789abcdef0123456789abcdef"
STATE_SECRET = "state-secret-for-tests-0123456789abcdef"
OAUTH = {
    "slack_bot_token": None,
    "slack_client_id": CLIENT_ID,
    "slack_client_secret": CLIENT_SECRET,
    "slack_state_secret": STATE_SECRET,
}
BOB = SlackUser(team_id="T0002", user_id="U0B01")
SENDERS = [("Bob Jones", "bob@corp-b.example")]


@asynccontextmanager
async def oauth_app(
    engine: AsyncEngine,
    slack: FakeSlack,
    *,
    worker: bool = False,
    token_rotation: bool = False,
    expires_in: int = 43_200,
    **settings: Any,
) -> AsyncIterator[RunningApp]:
    """The app in OAuth mode, and the fake Slack playing that Slack app."""
    slack.configure_oauth(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_rotation=token_rotation,
        expires_in=expires_in,
    )
    async with running_app(engine=engine, slack=slack, worker=worker, **OAUTH, **settings) as app:
        yield app


def add_to_slack_url(page: str) -> str:
    """The landing page's "Add to Slack" link (the one link with that id)."""
    found = re.search(r'id="add-to-slack" href="([^"]+)"', page)
    assert found, page
    return html.unescape(found.group(1))


async def begin_install(app: RunningApp) -> str:
    """GET /slack/install: the state Slack will hand back (the browser keeps it as a cookie)."""
    response = await app.http.get("/slack/install")
    assert response.status_code == 200, response.text
    state = parse_qs(urlsplit(add_to_slack_url(response.text)).query)["state"][0]
    assert f"{STATE_COOKIE}={state};" in response.headers["set-cookie"]
    return state


async def finish_install(
    app: RunningApp, *, code: str, state: str, cookie: str | None = None
) -> httpx.Response:
    headers = {"Cookie": f"{STATE_COOKIE}={state if cookie is None else cookie}"}
    return await app.http.get(
        "/slack/oauth_redirect", params={"code": code, "state": state}, headers=headers
    )


async def install(
    app: RunningApp, slack: FakeSlack, team_id: str, *, user_id: str = "U0001"
) -> str:
    """The whole install of a workspace; returns its bot token as the fake Slack issued it."""
    state = await begin_install(app)
    code = slack.authorize(team_id=team_id, user_id=user_id, scopes=BOT_SCOPES)
    response = await finish_install(app, code=code, state=state)
    assert response.status_code == 200, response.text
    exchange = [c for c in slack.calls_to("oauth.v2.access") if c.args.get("code") == code]
    assert exchange and exchange[0].ok
    return str(exchange[0].response["access_token"])  # type: ignore[index]


async def dump(engine: AsyncEngine) -> str:
    """Every row of every table, as text: what a database dump would show."""
    parts = []
    async with engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            rows = (await connection.execute(select(table))).all()
            parts.extend(repr(tuple(row)) for row in rows)
    return "\n".join(parts)


def store_of(app: RunningApp) -> EncryptedInstallationStore:
    assert app.services.installations is not None
    return app.services.installations


async def bot_token(app: RunningApp, team_id: str) -> str | None:
    bot = await store_of(app).async_find_bot(enterprise_id=None, team_id=team_id)
    return bot.bot_token if bot else None


async def queue_email(app: RunningApp, user: SlackUser, key: str) -> OutboxEmail:
    email = ValidEmail(
        sender="Bob Jones <bob@corp-b.example>",
        to=["carol@client.example"],
        cc=[],
        bcc=[],
        subject=f"Report {key}",
        body_html="<p>Hi</p>",
        body_source=None,
    )
    row, _ = await app.services.sending.submit(
        user, email, submission_key=f"V{key}:h", result_channel="C0B01"
    )
    return row


# --- the install flow ---------------------------------------------------------------------------


async def test_install_page_links_to_slack_with_our_scopes_and_a_signed_state(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    async with oauth_app(engine, slack) as app:
        response = await app.http.get("/slack/install")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    url = urlsplit(add_to_slack_url(response.text))
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://slack.com/oauth/v2/authorize"
    query = parse_qs(url.query, keep_blank_values=True)
    assert query["client_id"] == [CLIENT_ID]
    assert query["scope"] == [",".join(BOT_SCOPES)]
    assert query["user_scope"] == [""]
    state = query["state"][0]
    cookie = response.headers["set-cookie"]
    assert f"{STATE_COOKIE}={state};" in cookie and "HttpOnly" in cookie and "Secure" in cookie
    # The database keeps a keyed hash of the state, never the state itself.
    assert state not in await dump(engine)
    async with engine.connect() as connection:
        stored = (await connection.execute(select(installation_tables.oauth_states))).all()
    assert len(stored) == 1


async def test_valid_code_and_state_store_the_installation_with_tokens_encrypted(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    async with oauth_app(engine, slack, token_rotation=True) as app:
        token = await install(app, slack, "T0002", user_id="U0B01")
        exchange = slack.calls_to("oauth.v2.access")[0]
        # The app's credentials went as Slack wants them (HTTP Basic), with the code.
        assert exchange.headers.get("Authorization", "").startswith("Basic ")
        refresh = str(exchange.response["refresh_token"])  # type: ignore[index]
        bot = await store_of(app).async_find_bot(enterprise_id=None, team_id="T0002")
        assert bot is not None and bot.bot_token == token and bot.bot_refresh_token == refresh
        assert bot.bot_user_id == "UBOTT0002" and bot.bot_id == "BT0002"
        assert bot.bot_scopes == list(BOT_SCOPES)
        installation = await store_of(app).async_find_installation(
            enterprise_id=None, team_id="T0002"
        )
        assert installation is not None and installation.user_id == "U0B01"
        assert installation.bot_token == token
        # The state was used up by the install.
        async with engine.connect() as connection:
            assert not (await connection.execute(select(installation_tables.oauth_states))).all()
    text = await dump(engine)
    assert "T0002" in text  # the rows are there …
    assert token not in text and refresh not in text  # … their tokens are not
    assert token[:20] not in text and "xoxe" not in text and "xoxb" not in text


async def test_bad_expired_and_replayed_states_are_refused(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    async with oauth_app(engine, slack) as app:

        def code() -> str:
            return slack.authorize(team_id="T0009", scopes=BOT_SCOPES)

        # No cookie: this browser did not start the install.
        state = await begin_install(app)
        no_cookie = await app.http.get(
            "/slack/oauth_redirect", params={"code": code(), "state": state}
        )
        assert no_cookie.status_code == 400
        # A state someone changed, or signed with another secret.
        head, _, _signature = state.rpartition(".")
        forged = SignedStateStore(engine=engine, secret=SecretStr("x" * 40))
        for bad in (f"{head}.{'A' * 43}", await forged.async_issue(), "not-a-state"):
            response = await finish_install(app, code=code(), state=bad)
            assert response.status_code == 401, bad
        # Expired: issued (signed with our secret) eleven minutes ago.
        old = SignedStateStore(
            engine=engine, secret=SecretStr(STATE_SECRET), clock=lambda: time.time() - 660
        )
        expired = await finish_install(app, code=code(), state=await old.async_issue())
        assert expired.status_code == 401
        # A good state works once; replayed, it is refused.
        assert (await finish_install(app, code=code(), state=state)).status_code == 200
        assert (await finish_install(app, code=code(), state=state)).status_code == 401
        # A good state with a code Slack did not issue (or issued already) installs nothing.
        fresh = await begin_install(app)
        assert (await finish_install(app, code="123.456.bogus", state=fresh)).status_code == 401
        async with engine.connect() as connection:
            rows = (await connection.execute(select(installation_tables.installations))).all()
        assert len(rows) == 1
    assert [c.error for c in slack.calls_to("oauth.v2.access")] == [None, "invalid_code"]


async def test_state_signature_check_refuses_junk_without_touching_the_database(
    engine: AsyncEngine,
) -> None:
    store = SignedStateStore(engine=engine, secret=SecretStr(STATE_SECRET))
    good = await store.async_issue()
    assert store.signed(good)
    nonce, expires, signature = good.split(".")
    for junk in (
        "",
        "a.b",
        f"{nonce}.{expires}",
        f"{nonce}.{int(expires) + 1}.{signature}",  # a longer life, same signature
        f"ü{nonce}.{expires}.{signature}",
        f"{nonce}.{expires}.{signature}{'x' * 200}",
        f"{nonce}.²³.{signature}",
    ):
        assert not store.signed(junk)
        assert not await store.async_consume(junk)
    assert await store.async_consume(good)
    assert not await store.async_consume(good)


async def test_fake_slack_checks_the_apps_credentials_like_slack(slack: FakeSlack) -> None:
    slack.configure_oauth(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    client = AsyncWebClient(base_url=slack.api_url)
    code = slack.authorize(team_id="T0003", scopes=BOT_SCOPES)
    for client_id, secret, error in (
        ("999.999", CLIENT_SECRET, "invalid_client_id"),
        (CLIENT_ID, "wrong", "bad_client_secret"),
    ):
        with pytest.raises(SlackApiError) as failed:
            await client.oauth_v2_access(client_id=client_id, client_secret=secret, code=code)
        assert failed.value.response["error"] == error
    granted = await client.oauth_v2_access(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code=code
    )
    assert granted["team"]["id"] == "T0003" and "refresh_token" not in granted.data
    with pytest.raises(SlackApiError, match="invalid_code"):
        await client.oauth_v2_access(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code=code)
    with pytest.raises(SlackApiError, match="invalid_refresh_token"):
        await client.oauth_v2_access(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            grant_type="refresh_token",
            refresh_token="xoxe-1-unknown",
        )


# --- tokens per workspace ---------------------------------------------------------------------


async def test_requests_from_two_workspaces_each_use_their_own_bot_token(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    async with oauth_app(engine, slack) as app:
        token_a = await install(app, slack, "T0001")
        token_b = await install(app, slack, "T0002")
        assert token_a != token_b
        for team, trigger in (("T0001", "trigger-a"), ("T0002", "trigger-b")):
            response = await app.command("connect", team_id=team, trigger_id=trigger)
            assert response.status_code == 200
        opened = {
            c.args["trigger_id"]: c.token
            for c in await slack.await_for_calls("views.open", 2)
            if c.ok
        }
        assert opened == {"trigger-a": token_a, "trigger-b": token_b}
        # A workspace that never installed gets Bolt's "reinstall" answer and no Slack call.
        stranger = await app.command("connect", team_id="T0404", trigger_id="trigger-x")
        assert stranger.status_code == 200
        answer = await slack.await_for_response(lambda r: "reinstall" in str(r.json))
        assert answer.name == "command"
    assert not [c for c in slack.calls if c.args.get("trigger_id") == "trigger-x"]


async def test_worker_posts_workspace_bs_status_with_bs_token(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    async with oauth_app(engine, slack, worker=True) as app:
        await install(app, slack, "T0001")
        token_b = await install(app, slack, "T0002")
        await app.services.links.connect(BOB, portal.add_user(7, senders=SENDERS).webhook_url)
        row = await queue_email(app, BOB, "b1")
        posted = await slack.await_for(
            "chat.postMessage", lambda c: c.args.get("channel") == "C0B01", timeout=10
        )
        assert posted.ok and posted.token == token_b
    # Every call the worker made for Bob (his language, the status message) used B's token.
    worker_calls = [c for c in slack.calls if c.method in ("users.info", "chat.postMessage")]
    assert worker_calls and {c.token for c in worker_calls} == {token_b}
    assert row.team_id == "T0002"


async def test_an_expiring_token_is_refreshed_before_the_workers_call_and_saved_encrypted(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Rotating tokens: one that expires within two hours is refreshed (grant_type=
    refresh_token) before the worker uses it; the new pair is saved encrypted, once."""
    async with oauth_app(engine, slack, token_rotation=True, expires_in=3600) as app:
        old_token = await install(app, slack, "T0002")
        first_refresh = str(slack.calls_to("oauth.v2.access")[0].response["refresh_token"])  # type: ignore[index]
        slack.configure_oauth(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_rotation=True
        )  # the refreshed token lasts 12 hours
        await app.services.links.connect(BOB, portal.add_user(8, senders=SENDERS).webhook_url)
        await queue_email(app, BOB, "r1")
        worker = Worker(app.services)
        await worker.start()
        try:
            posted = await slack.await_for("chat.postMessage", timeout=10)
        finally:
            await worker.stop()
        refreshes = [c for c in slack.calls_to("oauth.v2.access") if c.args.get("grant_type")]
        assert len(refreshes) == 1 and refreshes[0].ok
        assert refreshes[0].args["grant_type"] == "refresh_token"
        assert refreshes[0].args["refresh_token"] == first_refresh
        new_token = str(refreshes[0].response["access_token"])  # type: ignore[index]
        new_refresh = str(refreshes[0].response["refresh_token"])  # type: ignore[index]
        assert posted.ok and posted.token == new_token != old_token
        bot = await store_of(app).async_find_bot(enterprise_id=None, team_id="T0002")
        assert bot is not None and bot.bot_token == new_token
        assert bot.bot_refresh_token == new_refresh
        assert bot.bot_token_expires_at is not None
        assert bot.bot_token_expires_at > time.time() + 11 * 3600
        text = await dump(engine)
        assert new_token not in text and new_refresh not in text
    # The bot's scopes and ids survived the refresh.
    assert bot.bot_scopes == list(BOT_SCOPES) and bot.bot_user_id == "UBOTT0002"


async def test_start_in_oauth_mode_creates_no_tables(engine: AsyncEngine, slack: FakeSlack) -> None:
    """The stores use the tables Alembic made: building the app issues no CREATE TABLE."""
    statements: list[str] = []

    def remember(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    from sqlalchemy import event

    event.listen(engine.sync_engine, "before_cursor_execute", remember)
    try:
        async with oauth_app(engine, slack) as app:
            await install(app, slack, "T0001")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", remember)
    assert statements and not [s for s in statements if "CREATE" in s.upper()]


async def test_rotate_keys_reencrypts_the_slack_tokens(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    old_key = Fernet.generate_key().decode()
    async with oauth_app(engine, slack, b24mail_secret_keys=old_key) as app:
        token = await install(app, slack, "T0001")
        url = app.settings.database_url
    new_key = Fernet.generate_key().decode()
    settings = make_settings(
        database_url=url, slack=slack, b24mail_secret_keys=f"{new_key},{old_key}", **OAUTH
    )
    await rotate_keys(settings)
    only_new = EncryptedInstallationStore(
        client_id=CLIENT_ID, engine=engine, box=SecretBox([SecretStr(new_key)])
    )
    bot = await only_new.async_find_bot(enterprise_id=None, team_id="T0001")
    installation = await only_new.async_find_installation(enterprise_id=None, team_id="T0001")
    assert bot is not None and bot.bot_token == token
    assert installation is not None and installation.bot_token == token
    assert token not in await dump(engine)


# --- the mode decision ------------------------------------------------------------------------


def settings_with(tmp_path: Path, **values: Any) -> Any:
    from bot.settings import Settings

    base: dict[str, Any] = {
        "slack_signing_secret": "signing",
        "database_url": f"sqlite:///{tmp_path}/b.db",
    }
    base.update(values)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "mode", "problem"),
    [
        ({"slack_bot_token": "xoxb-1"}, "single", None),
        (OAUTH, "oauth", None),
        ({**OAUTH, "slack_state_secret": None}, "oauth", "SLACK_STATE_SECRET"),
        ({**OAUTH, "slack_state_secret": "short"}, "oauth", "SLACK_STATE_SECRET"),
        ({"slack_client_id": CLIENT_ID}, "oauth", "SLACK_CLIENT_SECRET is missing"),
        ({"slack_client_secret": CLIENT_SECRET}, "oauth", "SLACK_CLIENT_ID is missing"),
        ({**OAUTH, "slack_client_id": ""}, "oauth", "SLACK_CLIENT_ID is missing or empty"),
        ({**OAUTH, "slack_bot_token": "xoxb-1"}, "oauth", "SLACK_BOT_TOKEN is set as well"),
        ({**OAUTH, "slack_app_token": "xapp-1"}, "oauth", "Socket Mode serves no HTTP"),
        ({**OAUTH, "slack_signing_secret": None}, "oauth", "SLACK_SIGNING_SECRET"),
    ],
)
def test_settings_decide_the_slack_mode_and_refuse_inconsistent_ones(
    tmp_path: Path, values: dict[str, Any], mode: str, problem: str | None
) -> None:
    settings = settings_with(tmp_path, **values)
    assert settings.slack_mode == mode
    found = settings.slack_credentials_problem()
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
        assert CLIENT_SECRET not in found and STATE_SECRET not in found


async def test_check_prints_the_mode_and_why(tmp_path: Path) -> None:
    await migrate(settings_with(tmp_path))  # `check` fails on a database not yet migrated
    lines, ok = await check(settings_with(tmp_path, slack_bot_token="xoxb-1"))
    assert ok and "slack mode: single workspace, because none of SLACK_CLIENT_ID" in "\n".join(
        lines
    )
    lines, ok = await check(settings_with(tmp_path, **OAUTH))
    text = "\n".join(lines)
    assert ok and "slack mode: multi-workspace OAuth, because SLACK_CLIENT_ID" in text
    assert CLIENT_SECRET not in text and STATE_SECRET not in text
    lines, ok = await check(settings_with(tmp_path, slack_client_id=CLIENT_ID))
    text = "\n".join(lines)
    assert not ok and "because SLACK_CLIENT_ID is set" in text and "SLACK_CLIENT_SECRET" in text


def test_serve_refuses_an_inconsistent_oauth_configuration_with_exit_code_2(
    tmp_path: Path,
) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SLACK_", "B24MAIL_", "DATABASE_URL"))
    }
    env.update(
        SLACK_CLIENT_ID=CLIENT_ID,
        SLACK_SIGNING_SECRET="signing",
        DATABASE_URL=f"sqlite:///{tmp_path}/b.db",
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "SLACK_CLIENT_SECRET is missing" in result.stderr
    assert not (tmp_path / "b.db").exists()


async def test_single_workspace_mode_refuses_when_bolt_would_switch_to_oauth(
    engine: AsyncEngine, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pitfall: both variables in os.environ (even empty) make Bolt ignore the token."""
    url = engine.url.render_as_string(hide_password=False)
    settings = make_settings(database_url=url, slack=slack)
    assert settings.slack_mode == "single"
    monkeypatch.setenv("SLACK_CLIENT_ID", "")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "")
    # For b24mail's settings empty is unset (single workspace), but Bolt reads os.environ
    # itself and takes them for OAuth: the app refuses instead of switching silently.
    assert make_settings(database_url=url, slack=slack).slack_mode == "single"
    services = build_services(settings, engine=engine)
    with pytest.raises(ConfigurationError, match="Bolt would switch to OAuth mode"):
        create_app(services)
    await services.bitrix24.aclose()


async def test_no_token_warning_from_bolt_and_the_settings_token_wins(
    engine: AsyncEngine,
    slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With SLACK_BOT_TOKEN in os.environ, as in production, Bolt logged "As you gave client
    as well, token will be unused" at every start; calls still go to SLACK_API_URL with the
    token of the settings."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    caplog.set_level(logging.DEBUG)
    async with running_app(engine=engine, slack=slack) as app:
        assert (await app.command("connect", trigger_id="trigger-env")).status_code == 200
        opened = await slack.await_for("views.open")
        assert opened.token == slack.token
    bolt = [r.getMessage() for r in caplog.records if r.name.startswith("bot.slack.bolt")]
    assert bolt and not [message for message in bolt if "will be unused" in message]


async def test_single_workspace_mode_still_uses_slack_bot_token(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    async with running_app(engine=engine, slack=slack) as app:
        assert app.services.installations is None and app.settings.slack_mode == "single"
        assert (await app.command("connect", trigger_id="trigger-single")).status_code == 200
        opened = await slack.await_for("views.open")
        assert opened.token == slack.token
        assert (await app.http.get("/slack/install")).status_code == 404


async def test_no_token_or_oauth_secret_in_the_logs_at_debug(
    engine: AsyncEngine, slack: FakeSlack, portal: FakePortal
) -> None:
    """Install, state check and a token refresh with every logger at DEBUG, formatted the way
    b24mail formats its log lines: no token, refresh token, client secret or state secret."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("%(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        async with oauth_app(engine, slack, token_rotation=True, expires_in=3600) as app:
            await install(app, slack, "T0002")
            await app.services.links.connect(BOB, portal.add_user(9, senders=SENDERS).webhook_url)
            await queue_email(app, BOB, "l1")
            worker = Worker(app.services)
            await worker.start()
            try:
                await slack.await_for("chat.postMessage", timeout=10)
            finally:
                await worker.stop()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    logged = stream.getvalue()
    grants = [c.response or {} for c in slack.calls_to("oauth.v2.access")]
    secrets_seen = [CLIENT_SECRET, STATE_SECRET]
    for grant in grants:
        secrets_seen += [str(grant["access_token"]), str(grant["refresh_token"])]
    assert len(grants) >= 2 and "oauth.v2.access" in logged
    for secret in secrets_seen:
        assert secret not in logged
        assert secret[-24:] not in logged
