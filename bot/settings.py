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
# SLACK_STATE_SECRET signs OAuth states with HMAC-SHA256: at least 32 characters.
MIN_STATE_SECRET = 32


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


# The optional settings that hold text: blank is unset (see Settings._blank_is_unset).
_OPTIONAL_TEXT = (
    "slack_bot_token",
    "slack_signing_secret",
    "slack_app_token",
    "slack_api_url",
    "slack_client_id",
    "slack_client_secret",
    "slack_state_secret",
    "slack_redirect_uri",
    "b24mail_secret_keys",
    "b24mail_metrics_token",
)


class Settings(BaseSettings):
    """Everything b24mail reads from its environment. Every secret is a SecretStr."""

    # An empty variable (`SLACK_BOT_TOKEN=` in a shell or .env) counts as not set: the default,
    # or the same "set SLACK_BOT_TOKEN" message as a missing one, never an empty credential.
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str | None = Field(
        default=None, description="Base URL of the Slack Web API (staging, tests)."
    )
    # Multi-workspace OAuth installs (see slack_mode): all three, and no SLACK_BOT_TOKEN.
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_state_secret: SecretStr | None = None
    slack_redirect_uri: str | None = None

    database_url: str = DEFAULT_DATABASE_URL
    b24mail_secret_keys: SecretStr | None = None
    port: int = Field(default=3000, ge=1, le=65535)
    host: str = "0.0.0.0"  # noqa: S104 - a server listens on all interfaces by default
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Text for a person at a terminal (the embedded default); json for a log shipper.
    log_format: Literal["text", "json"] = "text"
    # Processes of `b24mail web` (uvicorn workers); the variable Heroku and others set.
    web_concurrency: int = Field(default=2, ge=1, le=64)
    # How long a stopping process waits for work in flight (HTTP requests, e-mails being sent)
    # before it leaves the rest to their leases. Keep the supervisor's kill timeout above it.
    b24mail_shutdown_grace_seconds: float = Field(default=20.0, ge=0, le=600)
    # `b24mail worker` serves /metrics and /healthz on this port when set.
    b24mail_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # When set, /metrics answers only requests with `Authorization: Bearer <token>`.
    b24mail_metrics_token: SecretStr | None = None

    b24mail_allow_insecure_portals: bool = False
    b24mail_max_recipients: int = Field(default=50, ge=1, le=500)
    b24mail_hourly_cap: int = Field(default=200, ge=1)
    # Audit records older than this are deleted by the worker (0 is refused: keep at least a day).
    b24mail_audit_retention_days: int = Field(default=365, ge=1, le=36_500)
    b24mail_retry_window_minutes: float = Field(default=30.0, gt=0)
    b24mail_undo_seconds: float = Field(default=10.0, ge=0, le=120)
    b24mail_draft_days: float = Field(default=30.0, gt=0)
    b24mail_retry_base_seconds: float = Field(default=5.0, gt=0)
    b24mail_retry_max_seconds: float = Field(default=300.0, gt=0)
    b24mail_lease_seconds: float = Field(default=120.0, ge=2)
    b24mail_sender_cache_minutes: float = Field(default=60.0, gt=0)
    b24mail_connect_timeout_seconds: float = Field(default=2.2, gt=0, le=2.8)
    b24mail_run_worker: bool = True
    # New-mail notifications: how often a subscribed mailbox is checked at most, the share of
    # a portal's request rate (BITRIX24_RATE) polls may use, and how far back each check looks
    # (Bitrix24 may list an e-mail long after its date).
    b24mail_poll_interval_seconds: float = Field(default=60.0, ge=1)
    b24mail_poll_budget: float = Field(default=0.25, gt=0, le=1)
    b24mail_poll_lookback_hours: float = Field(default=24.0, ge=1)
    bitrix24_rate: float = Field(default=2.0, gt=0)
    bitrix24_burst: int = Field(default=50, ge=1)
    bitrix24_read_timeout: float = Field(default=30.0, gt=0)
    bitrix24_request_limit: float = Field(default=60.0, ge=0)

    @field_validator(*_OPTIONAL_TEXT, mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """Blank values (also given directly, or only spaces) are as good as missing."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and not text.strip():
            return None
        return value

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

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

    @property
    def slack_mode(self) -> Literal["single", "oauth"]:
        """How b24mail gets its Slack tokens, decided here and only here (Bolt is never left to
        guess from the environment): "oauth" as soon as any OAuth variable is set (multi-workspace
        installs, tokens in the database), else "single" (one workspace, SLACK_BOT_TOKEN).
        slack_credentials_problem() refuses the combinations that cannot work."""
        return "oauth" if self._oauth_variables_set() else "single"

    def _oauth_variables_set(self) -> list[str]:
        values = {
            "SLACK_CLIENT_ID": self.slack_client_id,
            "SLACK_CLIENT_SECRET": self.slack_client_secret,
            "SLACK_STATE_SECRET": self.slack_state_secret,
        }
        return [name for name, value in values.items() if value is not None]

    def slack_mode_reason(self) -> str:
        """Which mode, and why, for `b24mail check` (names variables, never their values)."""
        if self.slack_mode == "oauth":
            return (
                "multi-workspace OAuth, because "
                + _are_set(self._oauth_variables_set())
                + ": workspaces install at /slack/install; their bot tokens are kept "
                "encrypted in the database"
            )
        return (
            "single workspace, because none of SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, "
            "SLACK_STATE_SECRET is set: one workspace, its bot token from SLACK_BOT_TOKEN"
        )

    def slack_credentials_problem(self) -> str | None:
        """Explain which Slack variables are missing, or None when the app can talk to Slack."""
        if self.slack_mode == "oauth":
            return self._oauth_problem()
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

    def _oauth_problem(self) -> str | None:
        """What makes the OAuth configuration inconsistent, or None."""
        problems = []
        where = "api.slack.com/apps → your app → Basic Information → App Credentials"
        if not self.slack_client_id:
            problems.append(f"SLACK_CLIENT_ID is missing or empty ({where} → Client ID)")
        if self.slack_client_secret is None or not self.slack_client_secret.get_secret_value():
            problems.append(f"SLACK_CLIENT_SECRET is missing or empty ({where} → Client Secret)")
        state = self.slack_state_secret.get_secret_value() if self.slack_state_secret else ""
        if len(state) < MIN_STATE_SECRET:
            problems.append(
                f"SLACK_STATE_SECRET is missing or shorter than {MIN_STATE_SECRET} characters "
                "(it signs the OAuth state; make one with: "
                'python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        if self.slack_bot_token is not None:
            problems.append(
                "SLACK_BOT_TOKEN is set as well: in OAuth mode each workspace's token comes from "
                "its installation, and Bolt would silently ignore SLACK_BOT_TOKEN. Unset "
                "SLACK_BOT_TOKEN for OAuth, or unset SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and "
                "SLACK_STATE_SECRET for a single workspace"
            )
        if self.socket_mode:
            problems.append(
                "SLACK_APP_TOKEN is set: Socket Mode serves no HTTP, so nobody could reach "
                "/slack/install and /slack/oauth_redirect. Unset SLACK_APP_TOKEN for OAuth"
            )
        if self.slack_signing_secret is None:
            problems.append(
                "SLACK_SIGNING_SECRET is missing (api.slack.com/apps → your app → Basic "
                "Information → App Credentials → Signing Secret)"
            )
        if not problems:
            return None
        lines = "\n".join(f"  - {item}" for item in problems)
        return (
            "Slack OAuth (multi-workspace) mode was chosen because "
            + _are_set(self._oauth_variables_set())
            + f", but it cannot work:\n{lines}"
        )

    def secret_keys(self, *, generate: bool = True) -> list[SecretStr]:
        """The Fernet keys, first one encrypting; generated once into a 0600 file for SQLite
        (with generate=False, none yet is [])."""
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
        if not generate and not key_file.exists():
            return []
        return [_load_or_create_key_file(key_file)]


def _are_set(names: list[str]) -> str:
    return f"{names[0]} is set" if len(names) == 1 else f"{', '.join(names)} are set"


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
