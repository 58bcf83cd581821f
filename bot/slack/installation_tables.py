"""slack_sdk's OAuth installation and state tables, on our metadata so Alembic manages them.

Built with slack_sdk's own table builders, so its SQLAlchemy stores read and write them as
they expect; the migrations create them instead of `create_tables()` at run time. The token
columns are TEXT instead of slack_sdk's VARCHAR(200): b24mail stores tokens encrypted
(bot/slack/oauth.py), and an encrypted rotating token is longer than 200 characters.
"""

from __future__ import annotations

from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy import Text

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
