"""manifest.yml is valid for Slack, and it and the app's listeners name the same entry points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.slack import ids
from bot.slack.listeners.events import EVENTS
from bot.slack.listeners.home import EVENTS as HOME_EVENTS
from bot.slack.oauth import BOT_SCOPES, REDIRECT_PATH
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import event_callback, message_action, slash_command_body
from tests.support.app import running_app

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT.parent / "shared" / "reference" / "slack-manifest.schema.1.0.0.json"
LOCAL_SCHEMA = ROOT / "tests" / "data" / "slack-manifest.schema.1.0.0.json"


def manifest() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "manifest.yml").read_text()))


def test_manifest_validates_against_slacks_schema() -> None:
    schema_path = SCHEMA if SCHEMA.exists() else LOCAL_SCHEMA
    schema = json.loads(schema_path.read_text())
    jsonschema.validate(manifest(), schema)


def test_manifest_requests_only_the_scopes_we_use() -> None:
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])
    assert scopes == {
        "commands",
        "chat:write",
        "chat:write.public",
        "im:write",
        "users:read",
        # new-mail notifications: exactly once (history) and channel membership (read)
        "channels:history",
        "groups:history",
        "im:history",
        "channels:read",
        "groups:read",
        # names of mentioned user groups in e-mail bodies
        "usergroups:read",
    }
    # The OAuth install URL asks for the same scopes, in the manifest's order.
    assert list(BOT_SCOPES) == manifest()["oauth_config"]["scopes"]["bot"]
    assert "user" not in manifest()["oauth_config"]["scopes"]


def test_oauth_redirect_url_is_the_one_bolt_serves() -> None:
    urls = manifest()["oauth_config"]["redirect_urls"]
    assert urls == ["https://b24mail.example.com/slack/oauth_redirect"]
    assert all(url.endswith(REDIRECT_PATH) for url in urls)


def test_manifest_and_listeners_name_the_same_events() -> None:
    subscriptions = manifest()["settings"]["event_subscriptions"]
    assert subscriptions["request_url"] == "https://b24mail.example.com/slack/events"
    assert sorted(subscriptions["bot_events"]) == sorted((*EVENTS, *HOME_EVENTS))
    assert "user_events" not in subscriptions


def test_the_home_tab_is_enabled_and_the_messages_tab_kept() -> None:
    app_home = manifest()["features"]["app_home"]
    assert app_home["home_tab_enabled"] is True
    assert app_home["messages_tab_enabled"] is True


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_every_url_uses_the_one_placeholder_host() -> None:
    """README tells to replace b24mail.example.com: it must be the only host, in 5 URLs."""
    urls = [s for s in _strings(manifest()) if s.startswith(("http://", "https://"))]
    assert len(urls) == 5
    assert all(url.startswith("https://b24mail.example.com/slack/") for url in urls)


def _shortcut_ids() -> list[str]:
    return [value for name, value in vars(ids).items() if name.endswith("_SHORTCUT")]


async def test_every_manifest_entry_point_has_a_listener_and_vice_versa(
    engine: AsyncEngine, slack: FakeSlack
) -> None:
    """Bolt answers 404 to requests no listener takes, so each entry point is probed for real."""
    entry = manifest()
    commands = [c["command"] for c in entry["features"]["slash_commands"]]
    shortcuts = [s["callback_id"] for s in entry["features"].get("shortcuts", [])]
    assert commands == [ids.COMMAND]
    assert sorted(shortcuts) == sorted(_shortcut_ids())
    async with running_app(engine=engine, slack=slack) as app:
        for command in commands:
            body = slash_command_body(
                text="help", command=command, response_url=slack.response_url()
            )
            assert (await app.post_signed(body)).status_code == 200
        unknown = slash_command_body(
            text="help", command="/not-ours", response_url=slack.response_url()
        )
        assert (await app.post_signed(unknown)).status_code == 404
        for callback_id in shortcuts:
            payload = message_action(
                callback_id=callback_id,
                message={
                    "type": "message",
                    "user": "U0002",
                    "ts": "1700000000.000100",
                    "text": "hi",
                },
                response_url=slack.response_url(),
                trigger_id="trigger-manifest",
            )
            assert (await app.interactive(payload)).status_code == 200
        events = entry["settings"]["event_subscriptions"]["bot_events"]
        for event_type in events:
            body = json.dumps(event_callback({"type": event_type, "tokens": {}}))
            assert (await app.post_signed(body, content_type="application/json")).status_code == 200
        stray = json.dumps(event_callback({"type": "reaction_added", "user": "U0002"}))
        assert (await app.post_signed(stray, content_type="application/json")).status_code == 404


@pytest.mark.parametrize("url_key", ["request_url", "message_menu_options_url"])
def test_request_urls_point_at_the_slack_endpoint(url_key: str) -> None:
    assert manifest()["settings"]["interactivity"][url_key].endswith("/slack/events")
