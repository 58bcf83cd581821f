"""Settings: defaults, URL normalization, keys, and refusing to run half-configured."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.settings import ConfigurationError, Settings, normalize_database_url


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgresql://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql+psycopg2://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("sqlite:///./b24mail.db", "sqlite+aiosqlite:///./b24mail.db"),
        ("sqlite+aiosqlite:////var/lib/b.db", "sqlite+aiosqlite:////var/lib/b.db"),
    ],
)
def test_database_urls_are_normalized(given: str, expected: str) -> None:
    """postgres:// and postgresql:// (Heroku style) and plain sqlite:// all reach the async drivers."""
    assert normalize_database_url(given) == expected


@pytest.mark.parametrize("bad", ["mysql://u@h/d", "not a url"])
def test_unsupported_database_urls_are_explained(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        normalize_database_url(bad)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded default: SQLite file beside the working directory, port 3000, HTTP mode."""
    for name in ("DATABASE_URL", "PORT", "SLACK_APP_TOKEN", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    s = settings()
    assert s.database_url == "sqlite+aiosqlite:///./b24mail.db"
    assert s.port == 3000 and not s.socket_mode and s.log_level == "INFO"
    assert s.b24mail_max_recipients == 50 and not s.b24mail_allow_insecure_portals


def test_sqlite_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    s = settings(database_url=f"sqlite:///{tmp_path}/data/b24mail.db")
    first = s.secret_keys()
    key_file = tmp_path / "data" / "b24mail.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [k.get_secret_value() for k in s.secret_keys()] == [k.get_secret_value() for k in first]


def test_postgres_without_keys_refuses_to_start() -> None:
    s = settings(database_url="postgresql://u@db/app")
    with pytest.raises(ConfigurationError, match="B24MAIL_SECRET_KEYS is required"):
        s.secret_keys()


def test_keys_are_validated_and_ordered() -> None:
    k1, k2 = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    s = settings(database_url="postgresql://u@db/app", b24mail_secret_keys=f" {k1} , {k2} ")
    assert [k.get_secret_value() for k in s.secret_keys()] == [k1, k2]
    with pytest.raises(ConfigurationError, match="key number 2"):
        settings(b24mail_secret_keys=f"{k1},nope").secret_keys()


def test_secrets_do_not_show_in_repr() -> None:
    s = settings(slack_bot_token="xoxb-very-secret", slack_signing_secret="sign-secret-123")
    shown = repr(s) + str(s) + s.model_dump_json()
    assert "xoxb-very-secret" not in shown and "sign-secret-123" not in shown


def test_missing_slack_credentials_are_named_with_where_to_find_them() -> None:
    problem = settings().slack_credentials_problem()
    assert problem is not None
    assert "SLACK_BOT_TOKEN" in problem and "OAuth & Permissions" in problem
    assert "SLACK_SIGNING_SECRET" in problem and "Signing Secret" in problem
    assert (
        settings(slack_bot_token="x", slack_signing_secret="y").slack_credentials_problem() is None
    )


def test_empty_and_blank_values_count_as_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """From the environment, a .env file or directly: blank is the default (None for the
    optional ones), so every "missing" check and message applies to it."""
    from bot.settings import _OPTIONAL_TEXT

    for name in (*_OPTIONAL_TEXT, "PORT", "B24MAIL_METRICS_PORT", "DATABASE_URL"):
        monkeypatch.setenv(name.upper(), "")
    s = settings()
    assert all(getattr(s, name) is None for name in _OPTIONAL_TEXT)
    assert s.port == 3000 and s.b24mail_metrics_port is None
    assert s.database_url == "sqlite+aiosqlite:///./b24mail.db"
    assert s.slack_mode == "single" and "SLACK_BOT_TOKEN (" in str(s.slack_credentials_problem())

    monkeypatch.delenv("SLACK_BOT_TOKEN")
    monkeypatch.delenv("PORT")
    env_file = tmp_path / ".env"
    env_file.write_text("SLACK_BOT_TOKEN=\nPORT=\n", encoding="utf-8")
    from_file = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert from_file.slack_bot_token is None and from_file.port == 3000

    direct = settings(slack_bot_token="   ", slack_signing_secret="", slack_client_id=" ")
    assert direct.slack_bot_token is None and direct.slack_signing_secret is None
    assert direct.slack_mode == "single"


def test_the_readme_configuration_table_lists_every_setting() -> None:
    """Every field of Settings is a row of the README's table, and every row is a setting."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    documented: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            documented.update(re.findall(r"`([A-Z0-9_]+)`", first_cell))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - documented == set(), "settings missing from the README's table"
    assert documented - fields == set(), "README rows that are no setting"


def test_undo_window_and_draft_retention_defaults_and_bounds() -> None:
    """Undo lasts 10 s unless set (0 turns it off); drafts are kept 30 days."""
    from pydantic import ValidationError

    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.b24mail_undo_seconds == 10 and s.b24mail_draft_days == 30
    assert Settings(_env_file=None, b24mail_undo_seconds=0).b24mail_undo_seconds == 0  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, b24mail_undo_seconds=-1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, b24mail_draft_days=0)  # type: ignore[call-arg]
