"""Slack installations in b24mail's own database, every token encrypted.

slack_sdk's async SQLAlchemy installation store on the tables our
Alembic migrations create (`bot/slack/installation_tables.py`), with every bot/user token and
refresh token Fernet-encrypted (`SecretBox`, B24MAIL_SECRET_KEYS) before it is written and
decrypted after it is read. A database dump holds no Slack token.
"""

from __future__ import annotations

import logging

from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.slack import installation_tables
from bot.store.crypto import SecretBox

log = logging.getLogger(__name__)

_BOT_TOKENS = ("bot_token", "bot_refresh_token")
_INSTALLATION_TOKENS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
# Slack tokens start with these; a value that does not is our ciphertext. Plain values can only
# come from rows written before b24mail encrypted them: read as they are, and
# `b24mail rotate-keys` encrypts them.
_PLAIN_PREFIXES = ("xox", "xapp-")


class EncryptedInstallationStore(AsyncInstallationStore):
    """slack_sdk's AsyncSQLAlchemyInstallationStore on our tables, tokens encrypted at rest."""

    def __init__(
        self,
        *,
        client_id: str,
        engine: AsyncEngine,
        box: SecretBox,
        logger: logging.Logger = log,
    ) -> None:
        self._inner = AsyncSQLAlchemyInstallationStore(
            client_id=client_id, engine=engine, logger=logger
        )
        # Our metadata's tables: Alembic created them (never create_tables() at run time), with
        # token columns wide enough for ciphertext.
        self._inner.installations = installation_tables.installations
        self._inner.bots = installation_tables.bots
        self._engine = engine
        self._box = box
        self.client_id = client_id

    @property
    def logger(self) -> logging.Logger:
        return self._inner.logger

    async def async_save(self, installation: Installation) -> None:
        # The inner store also saves installation.to_bot() of the sealed copy: sealed once.
        await self._inner.async_save(self._seal_installation(installation))

    async def async_save_bot(self, bot: Bot) -> None:
        await self._inner.async_save_bot(self._seal_bot(bot))

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        bot = await self._inner.async_find_bot(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        return self._open_bot(bot) if bot is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        installation = await self._inner.async_find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )
        return self._open_installation(installation) if installation is not None else None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._inner.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
    ) -> None:
        await self._inner.async_delete_installation(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self._inner.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)
        await self._inner.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)

    async def rotate_keys(self) -> int:
        """Re-encrypt every stored token with the first key (plain legacy ones get encrypted);
        returns how many token values were rewritten. One transaction, rows locked on PostgreSQL."""
        count = 0
        async with self._engine.begin() as connection:
            for table, columns in (
                (installation_tables.installations, _INSTALLATION_TOKENS),
                (installation_tables.bots, _BOT_TOKENS),
            ):
                rows = (
                    await connection.execute(
                        select(table.c.id, *(table.c[name] for name in columns)).with_for_update()
                    )
                ).mappings()
                for row in rows.all():
                    values = {
                        name: self._reseal(row[name]) for name in columns if row[name] is not None
                    }
                    if values:
                        await connection.execute(
                            update(table).where(table.c.id == row["id"]).values(**values)
                        )
                        count += len(values)
        return count

    # --- sealing ---------------------------------------------------------------------------

    def _seal(self, value: str | None) -> str | None:
        return self._box.encrypt(value) if value is not None else None

    def _open(self, value: str | None) -> str | None:
        if value is None or value.startswith(_PLAIN_PREFIXES):
            return value
        return self._box.decrypt(value).get_secret_value()

    def _reseal(self, value: str) -> str:
        return (
            self._box.encrypt(value)
            if value.startswith(_PLAIN_PREFIXES)
            else self._box.rotate(value)
        )

    def _seal_bot(self, bot: Bot) -> Bot:
        sealed = Bot(**bot.to_dict_for_copying())
        sealed.bot_token = self._seal(bot.bot_token) or ""
        sealed.bot_refresh_token = self._seal(bot.bot_refresh_token)
        return sealed

    def _open_bot(self, bot: Bot) -> Bot:
        bot.bot_token = self._open(bot.bot_token) or ""
        bot.bot_refresh_token = self._open(bot.bot_refresh_token)
        return bot

    def _seal_installation(self, installation: Installation) -> Installation:
        sealed = Installation(**installation.to_dict_for_copying())
        for name in _INSTALLATION_TOKENS:
            setattr(sealed, name, self._seal(getattr(installation, name)))
        return sealed

    def _open_installation(self, installation: Installation) -> Installation:
        for name in _INSTALLATION_TOKENS:
            setattr(installation, name, self._open(getattr(installation, name)))
        return installation
