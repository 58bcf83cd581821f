"""slack_sdk's OAuth installation and state tables, on our metadata so Alembic manages them.

Built with slack_sdk's own table builders, so its SQLAlchemy stores read and write them as
they expect; the migrations create them instead of `create_tables()` at run time. The token
columns are TEXT instead of slack_sdk's VARCHAR(200): b24mail stores tokens encrypted
(bot/slack/oauth.py), and an encrypted rotating token is longer than 200 characters.
"""

from __future__ import annotations

from collections.abc import Sequence

from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy import Delete, Table, Text

from bot.store.base import Base

INSTALLATIONS_TABLE = "slack_installations"
BOTS_TABLE = "slack_bots"
OAUTH_STATES_TABLE = "slack_oauth_states"

installations = SQLAlchemyInstallationStore.build_installations_table(
    Base.metadata, INSTALLATIONS_TABLE
)
bots = SQLAlchemyInstallationStore.build_bots_table(Base.metadata, BOTS_TABLE)
oauth_states = AsyncSQLAlchemyOAuthStateStore.build_oauth_states_table(
    Base.metadata, OAUTH_STATES_TABLE
)

for _table, _columns in (
    (installations, ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")),
    (bots, ("bot_token", "bot_refresh_token")),
):
    for _name in _columns:
        _table.c[_name].type = Text()


class InstallationRows:
    """The deletions bot/store/workspace.py runs in its transaction, keyed as slack_sdk's
    AsyncSQLAlchemyInstallationStore keys its own deletes (client id, enterprise, team)."""

    def __init__(self, client_id: str) -> None:
        self._client_id = client_id

    def of_workspace(self, *, enterprise_id: str | None, team_id: str | None) -> list[Delete]:
        return [
            self._of(bots, enterprise_id, team_id),
            self._of(installations, enterprise_id, team_id),
        ]

    def of_tokens(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_ids: Sequence[str],
        bot: bool,
    ) -> list[Delete]:
        statements = [
            self._of(installations, enterprise_id, team_id).where(
                installations.c.user_id == user_id
            )
            for user_id in user_ids
        ]
        if bot:
            statements.append(self._of(bots, enterprise_id, team_id))
        return statements

    def _of(self, table: Table, enterprise_id: str | None, team_id: str | None) -> Delete:
        # `== None` renders IS NULL, as in slack_sdk's own deletes (non-Grid, org-wide rows).
        return table.delete().where(
            table.c.client_id == self._client_id,
            table.c.enterprise_id == enterprise_id,
            table.c.team_id == team_id,
        )
