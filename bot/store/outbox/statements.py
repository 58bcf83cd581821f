"""The outbox's prebuilt Core statements, and the connection one of them runs on.

Built once, with bind parameters for everything that varies, so neither the statement nor its
cache key is built again per call. Through an ORM session the same single statement cost 3-4
times the CPU (statement building, its cache key, the session and unit of work), which was
most of the worker's time per e-mail.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, cast

from sqlalchemy import Integer, Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

from bot.store.db import SessionFactory
from bot.store.listen import OUTBOX_CHANNEL
from bot.store.models import OutboxEmail, OutboxStatus

TABLE = cast(Table, OutboxEmail.__table__)
_C = TABLE.c


class OutboxConnections:
    """The engine behind a session factory, and a cheap connection for a single statement."""

    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        if not isinstance(bind, AsyncEngine):
            raise TypeError("OutboxRepository needs a session factory bound to an AsyncEngine")
        self._engine: AsyncEngine = bind
        # A single statement needs no BEGIN/COMMIT round trips on PostgreSQL. SQLite keeps the
        # transaction: its COMMIT (an fsync) then runs off the event loop (bot.store.db).
        self._autocommit = (
            bind.execution_options(isolation_level="AUTOCOMMIT")
            if bind.dialect.name == "postgresql"
            else None
        )

    @contextlib.asynccontextmanager
    async def _one_statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one statement, committed as soon as it has run."""
        if self._autocommit is not None:
            async with self._autocommit.connect() as connection:
                yield connection
        else:
            async with self._engine.begin() as connection:
                yield connection


def _param(name: str, like: str) -> Any:
    """A bind parameter with the type of column `like` (so UTCDateTime and JSON still apply)."""
    return bindparam(name, type_=_C[like].type)


INSERT = insert(TABLE)
NOTIFY = select(func.pg_notify(OUTBOX_CHANNEL, bindparam("email_id")))
NEXT_QUEUED = select(func.min(_C.next_attempt_at)).where(_C.status == OutboxStatus.QUEUED)
NEXT_LEASE_END = select(func.min(_C.lease_expires_at)).where(_C.status == OutboxStatus.SENDING)
COUNT_SINCE = (
    select(func.count())
    .select_from(TABLE)
    .where(
        _C.enterprise_id == _param("enterprise_id", "enterprise_id"),
        _C.team_id == _param("team_id", "team_id"),
        _C.slack_user_id == _param("user_id", "slack_user_id"),
        _C.created_at >= _param("since", "created_at"),
        # Undone and cancelled e-mails were never sent: they do not use up the hourly cap.
        _C.status != OutboxStatus.CANCELLED,
    )
)
_STATEMENTS: dict[Any, Any] = {}


def _picked(candidates: Select[tuple[str]], postgres: bool) -> ColumnElement[bool]:
    """`id IN (candidates)`, the candidates chosen once. On PostgreSQL a plain IN (subquery)
    may be planned as a semi join that runs the LIMIT … SKIP LOCKED subquery again for each
    row, and then claims more rows than `limit` (12 of 12 with limit 8): a worker would hold
    rows it has no slot for while their leases run out. A materialized CTE picks them once."""
    if not postgres:
        return _C.id.in_(candidates.scalar_subquery())
    chosen = (
        candidates.with_for_update(skip_locked=True).cte("claimable").prefix_with("MATERIALIZED")
    )
    return _C.id.in_(select(chosen.c.id))


# What a claim takes: which rows are due, oldest first by which column, and what taking one
# writes into it. Bind parameters: now, until (the lease's end), limit, and owner for "due".
ClaimParts = tuple[ColumnElement[bool], Any, dict[str, Any]]


def _due_e_mails() -> ClaimParts:
    """Queued e-mails whose time has come, and sends whose worker's lease ran out."""
    now = _param("now", "next_attempt_at")
    due = or_(
        and_(_C.status == OutboxStatus.QUEUED, _C.next_attempt_at <= now),
        and_(_C.status == OutboxStatus.SENDING, _C.lease_expires_at <= now),
    )
    values = {
        "status": OutboxStatus.SENDING,
        "lease_owner": _param("owner", "lease_owner"),
        "lease_expires_at": _param("until", "lease_expires_at"),
        "attempts": _C.attempts + 1,
        "updated_at": now,
    }
    return due, _C.next_attempt_at, values


def _due_notifications() -> ClaimParts:
    """Rows whose status message is behind their state and not held by another notifier."""
    now = _param("now", "notify_due_at")
    due = and_(
        _C.notify_due_at <= now,
        _C.notified_version < _C.state_version,
        or_(_C.notify_lease_until.is_(None), _C.notify_lease_until <= now),
    )
    values = {
        "notify_lease_until": _param("until", "notify_lease_until"),
        "notify_attempts": _C.notify_attempts + 1,
    }
    return due, _C.notify_due_at, values


_CLAIMS: dict[str, Callable[[], ClaimParts]] = {
    "due": _due_e_mails,
    "notifications": _due_notifications,
}


def claim_statement(what: Literal["due", "notifications"], postgres: bool) -> Update:
    """UPDATE … RETURNING of up to `limit` due rows, oldest first, each claimed exactly once."""
    key = ("claim", what, postgres)
    if key not in _STATEMENTS:
        due, oldest_first, values = _CLAIMS[what]()
        candidates = (
            select(_C.id).where(due).order_by(oldest_first).limit(bindparam("limit", type_=Integer))
        )
        _STATEMENTS[key] = (
            update(TABLE).where(_picked(candidates, postgres), due).values(values).returning(*_C)
        )
    return _STATEMENTS[key]  # type: ignore[no-any-return]


def transition_statement(keys: frozenset[str]) -> Update:
    """Record a delivery outcome (the given columns), while the caller still holds the lease."""
    key = ("transition", keys)
    if key not in _STATEMENTS:
        now = _param("now", "updated_at")
        values: dict[str, Any] = {k: _param(f"v_{k}", k) for k in sorted(keys)}
        values.update(
            updated_at=now,
            state_version=_C.state_version + 1,
            notify_due_at=now,
            notify_attempts=0,
        )
        _STATEMENTS[key] = (
            update(TABLE)
            .where(
                _C.id == _param("email_id", "id"),
                _C.status == OutboxStatus.SENDING,
                _C.lease_owner == _param("owner", "lease_owner"),
            )
            .values(values)
        )
    return _STATEMENTS[key]  # type: ignore[no-any-return]


def mark_notified_statement(sqlite: bool) -> Update:
    """Remember the status message and the newest state it shows (never an older one)."""
    key = ("mark_notified", sqlite)
    if key not in _STATEMENTS:
        version = bindparam("version", type_=Integer)
        newest = (
            func.max(_C.notified_version, version)
            if sqlite
            else func.greatest(_C.notified_version, version)
        )
        _STATEMENTS[key] = (
            update(TABLE)
            .where(_C.id == _param("email_id", "id"))
            .values(
                status_channel=_param("channel", "status_channel"),
                status_ts=_param("ts", "status_ts"),
                status_note=_param("note", "status_note"),
                notified_version=newest,
                notify_lease_until=None,
                notify_attempts=0,
            )
        )
    return _STATEMENTS[key]  # type: ignore[no-any-return]
