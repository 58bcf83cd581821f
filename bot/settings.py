"""One Settings object, read from the environment (and an optional .env) once, in the entry point."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./b24mail.db"


class ConfigurationError(Exception):
    """The configuration cannot work; the message says which variable to set and where to find it."""


def normalize_database_url(url: str) -> str:
    """Map the URLs people paste (Heroku's postgres://, plain sqlite://) to the async drivers we use."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(
            "DATABASE_URL must look like sqlite:///path/to/b24mail.db or "
            "postgresql://user:password@host:5432/dbname"
        )
    base = scheme.split("+", 1)[0].lower()
    if base in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    raise ConfigurationError(
        f"DATABASE_URL uses the unsupported scheme {scheme!r}: use sqlite:// or postgresql://"
    )


class Settings(BaseSettings):
    """Everything b24mail reads from its environment. Every secret is a SecretStr."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str | None = Field(
        default=None, description="Base URL of the Slack Web API (staging, tests)."
    )

    database_url: str = DEFAULT_DATABASE_URL
    b24mail_secret_keys: SecretStr | None = None
    port: int = Field(default=3000, ge=1, le=65535)
    host: str = "0.0.0.0"  # noqa: S104 - a server listens on all interfaces by default
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    b24mail_allow_insecure_portals: bool = False
    b24mail_max_recipients: int = Field(default=50, ge=1, le=500)
    b24mail_hourly_cap: int = Field(default=200, ge=1)
    b24mail_retry_window_minutes: float = Field(default=30.0, gt=0)
    b24mail_retry_base_seconds: float = Field(default=5.0, gt=0)
    b24mail_retry_max_seconds: float = Field(default=300.0, gt=0)
    b24mail_lease_seconds: float = Field(default=120.0, ge=2)
    b24mail_sender_cache_minutes: float = Field(default=60.0, gt=0)
    b24mail_connect_timeout_seconds: float = Field(default=2.2, gt=0, le=2.8)
    b24mail_run_worker: bool = True
    bitrix24_rate: float = Field(default=2.0, gt=0)
    bitrix24_burst: int = Field(default=50, ge=1)
    bitrix24_read_timeout: float = Field(default=30.0, gt=0)
    bitrix24_request_limit: float = Field(default=60.0, ge=0)

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("slack_api_url")
    @classmethod
    def _slack_api_url_has_slash(cls, value: str | None) -> str | None:
        if value and not value.endswith("/"):
            return value + "/"
        return value or None

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite URL, or None for in-memory and other databases."""
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        path = path.split("?", 1)[0]
        if not path or path == ":memory:":
            return None
        return Path(path)

    @property
    def key_file(self) -> Path | None:
        """Where the embedded default keeps its generated encryption key: beside the database."""
        db = self.sqlite_path
        return db.with_suffix(".key") if db is not None else None

    def slack_credentials_problem(self) -> str | None:
        """Explain which Slack variables are missing, or None when the app can talk to Slack."""
        missing = []
        if self.slack_bot_token is None:
            missing.append(
                "SLACK_BOT_TOKEN (the xoxb-… Bot User OAuth Token: api.slack.com/apps → your app → "
                "OAuth & Permissions)"
            )
        if self.slack_signing_secret is None and not self.socket_mode:
            missing.append(
                "SLACK_SIGNING_SECRET (api.slack.com/apps → your app → Basic Information → "
                "App Credentials → Signing Secret)"
            )
        if not missing:
            return None
        lines = "\n".join(f"  - {item}" for item in missing)
        return (
            "b24mail cannot talk to Slack yet. Set these environment variables "
            f"(or put them in a .env file):\n{lines}\n"
            "For Socket Mode (no public URL needed) also set SLACK_APP_TOKEN (xapp-…: Basic "
            "Information → App-Level Tokens, scope connections:write)."
        )

    def secret_keys(self) -> list[SecretStr]:
        """The Fernet keys, first one encrypting; generated once into a 0600 file for SQLite."""
        if self.b24mail_secret_keys is not None:
            keys = [
                SecretStr(part.strip())
                for part in self.b24mail_secret_keys.get_secret_value().split(",")
                if part.strip()
            ]
            for index, key in enumerate(keys, start=1):
                try:
                    Fernet(key.get_secret_value())
                except ValueError as exc:
                    raise ConfigurationError(
                        f"B24MAIL_SECRET_KEYS: key number {index} is not a Fernet key (32 url-safe "
                        "base64-encoded bytes). Generate one with: "
                        'python -c "from cryptography.fernet import Fernet; '
                        'print(Fernet.generate_key().decode())"'
                    ) from exc
            if keys:
                return keys
        key_file = self.key_file
        if key_file is None:
            raise ConfigurationError(
                "B24MAIL_SECRET_KEYS is required with this DATABASE_URL: it encrypts the stored "
                "Bitrix24 webhooks. Generate a key with: "
                'python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"'
            )
        return [_load_or_create_key_file(key_file)]


def _load_or_create_key_file(path: Path) -> SecretStr:
    if path.exists():
        return SecretStr(path.read_text(encoding="ascii").strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return SecretStr(path.read_text(encoding="ascii").strip())
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    log.warning(
        "Generated a new encryption key in %s (mode 0600). Back it up with the database: "
        "without it the stored webhooks cannot be read. Set B24MAIL_SECRET_KEYS to manage "
        "keys yourself.",
        path,
    )
    return SecretStr(key.decode("ascii"))
