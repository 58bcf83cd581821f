"""Every table of b24mail on one metadata: what Alembic migrates and the tests compare."""

from __future__ import annotations

from bot.slack import installation_tables
from bot.store import audit, confirmations, models, policy, preferences, rate_limits
from bot.store.base import Base

metadata = Base.metadata

__all__ = [
    "audit",
    "confirmations",
    "installation_tables",
    "metadata",
    "models",
    "policy",
    "preferences",
    "rate_limits",
]
