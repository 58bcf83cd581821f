"""The outbox: durable e-mails, claimed by workers under a lease, and their pending Slack status.

Claims are one UPDATE … RETURNING over a sub-select of due rows. On PostgreSQL the sub-select
takes `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same row; SQLite runs one
writer at a time, which gives the same guarantee. A row whose lease ran out (its worker died) is
due again; the Idempotency-Key (the row id) makes the second attempt safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Integer, Table, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

from bot.identity import SlackUser
from bot.store.base import utcnow
from bot.store.db import SessionFactory
from bot.store.listen import OUTBOX_CHANNEL
from bot.store.models import OutboxEmail

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class NewEmail:
    submission_key: str
    user: SlackUser
    sender: str
    to: Sequence[str]
    subject: str
    body_html: str
    result_channel: str
    deadline: datetime
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    kind: str = "send"
    body_source: dict[str, Any] | None = None
    reply_to_message_id: int | None = None
    result_thread_ts: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class OutboxRepository:
    """The worker's hot statements (claims, outcomes, status bookkeeping) and the submission's
    insert run as prebuilt Core statements on a plain connection: through an ORM session the
    same single statement cost 3-4 times the CPU (statement building, its cache key, the
    session and unit of work), which was most of the worker's time per e-mail."""

    def __init__(self, *, sessions: SessionFactory) -> None:
        self._sessions = sessions
        bind = sessions.kw.get("bind")
        if not isinstance(bind, AsyncEngine):
            raise TypeError("OutboxRepository needs a session factory bound to an AsyncEngine")
        self._engine: AsyncEngine = bind
        self._notified = _Batcher(self._write_notified)
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

    # --- writing e-mails ------------------------------------------------------------------

    async def enqueue(
        self, new: NewEmail, *, hourly_cap: int | None = None
    ) -> tuple[OutboxEmail, bool]:
        """Store a submitted e-mail; a second delivery of the same submission returns the first.

        With `hourly_cap`, raises CapReached when the user already queued that many in the last
        hour, counted in the inserting transaction under a per-user lock (see _check_cap).
        """
        now = utcnow()
        row = OutboxEmail(
            id=str(uuid.uuid4()),
            submission_key=new.submission_key,
            enterprise_id=new.user.enterprise_id,
            team_id=new.user.team_id,
            slack_user_id=new.user.user_id,
            kind=new.kind,
            sender=new.sender,
            to_addrs=list(new.to),
            cc_addrs=list(new.cc),
            bcc_addrs=list(new.bcc),
            subject=new.subject,
            body_html=new.body_html,
            body_source=new.body_source,
            reply_to_message_id=new.reply_to_message_id,
            result_channel=new.result_channel,
            result_thread_ts=new.result_thread_ts,
            status=QUEUED,
            attempts=0,
            next_attempt_at=now,
            deadline_at=new.deadline,
            created_at=now,
            updated_at=now,
            state_version=1,
            notified_version=0,
            notify_due_at=now,
            notify_attempts=0,
        )
        values = {
            column.key: row.__dict__[column.key]
            for column in _TABLE.columns
            if column.key in row.__dict__
        }
        try:
            async with self._engine.begin() as connection:
                if hourly_cap is not None:
                    await _check_cap(
                        connection, new.user, hourly_cap, since=now - timedelta(hours=1)
                    )
                await connection.execute(_INSERT, values)
                await _notify_workers_core(connection, row.id)
        except IntegrityError:
            async with self._sessions() as session:
                existing = await session.scalar(
                    select(OutboxEmail).where(OutboxEmail.submission_key == new.submission_key)
                )
            if existing is None:
                raise
            return existing, False
        return row, True

    async def claim_due(
        self, *, owner: str, lease: timedelta, limit: int, now: datetime | None = None
    ) -> list[OutboxEmail]:
        now = now or utcnow()
        async with self._one_statement() as connection:
            statement = _claim_due_statement(connection.dialect.name == "postgresql")
            result = await connection.execute(
                statement, {"now": now, "until": now + lease, "owner": owner, "limit": limit}
            )
            return [OutboxEmail(**row._mapping) for row in result]

    async def next_due_at(self) -> datetime | None:
        """When the earliest queued e-mail or expiring lease is due (to sleep exactly that long)."""
        async with self._engine.connect() as connection:
            queued = await connection.scalar(_NEXT_QUEUED)
            leased = await connection.scalar(_NEXT_LEASE_END)
        times = [t for t in (queued, leased) if t is not None]
        return min(times) if times else None

    async def mark_sent(self, email_id: str, *, owner: str) -> bool:
        now = utcnow()
        return await self._transition(
            email_id,
            owner=owner,
            values={
                "status": SENT,
                "sent_at": now,
                "error_code": None,
                "error_detail": None,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        )

    async def mark_retry(
        self, email_id: str, *, owner: str, at: datetime, code: str, detail: str | None
    ) -> bool:
        return await self._transition(
            email_id,
            owner=owner,
            values={
                "status": QUEUED,
                "next_attempt_at": at,
                "error_code": code,
                "error_detail": detail,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        )

    async def mark_failed(
        self, email_id: str, *, owner: str, code: str, detail: str | None
    ) -> bool:
        return await self._transition(
            email_id,
            owner=owner,
            values={
                "status": FAILED,
                "error_code": code,
                "error_detail": detail,
                "lease_owner": None,
                "lease_expires_at": None,
            },
        )

    async def release(self, email_id: str, *, owner: str) -> bool:
        """Give a claimed row back untouched (graceful shutdown before the call was made)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id, OutboxEmail.lease_owner == owner)
                .values(
                    status=QUEUED,
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=OutboxEmail.attempts - 1,
                )
            )
        return bool(getattr(result, "rowcount", 0))

    async def _transition(self, email_id: str, *, owner: str, values: dict[str, Any]) -> bool:
        """Record an outcome, but only while we still hold the lease (else another worker does)."""
        params = {f"v_{key}": value for key, value in values.items()}
        params.update(email_id=email_id, owner=owner, now=utcnow())
        async with self._one_statement() as connection:
            result = await connection.execute(_transition_statement(frozenset(values)), params)
        return bool(result.rowcount)

    async def requeue(self, email_id: str, user: SlackUser, *, deadline: datetime) -> bool:
        """The Retry button: the same row (same key) goes back to the queue; owner only."""
        now = utcnow()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id, OutboxEmail.status == FAILED, *_owned_by(user))
                .values(
                    status=QUEUED,
                    next_attempt_at=now,
                    deadline_at=deadline,
                    attempts=0,
                    error_code=None,
                    error_detail=None,
                    updated_at=now,
                    state_version=OutboxEmail.state_version + 1,
                    notify_due_at=now,
                    notify_attempts=0,
                )
            )
            await _notify_workers(session, email_id)
        return bool(getattr(result, "rowcount", 0))

    # --- reading ------------------------------------------------------------------------------

    async def get(self, email_id: str) -> OutboxEmail | None:
        async with self._sessions() as session:
            return await session.get(OutboxEmail, email_id)

    async def get_owned(self, email_id: str, user: SlackUser) -> OutboxEmail | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(OutboxEmail).where(OutboxEmail.id == email_id, *_owned_by(user))
            )

    async def history(self, user: SlackUser, *, limit: int = 10) -> list[OutboxEmail]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(OutboxEmail)
                .where(*_owned_by(user))
                .order_by(OutboxEmail.created_at.desc())
                .limit(limit)
            )
            return list(rows.all())

    async def count_since(self, user: SlackUser, since: datetime) -> int:
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                _COUNT_SINCE,
                {
                    "enterprise_id": user.enterprise_id,
                    "team_id": user.team_id,
                    "user_id": user.user_id,
                    "since": since,
                },
            )
        return int(count or 0)

    async def queue_depth(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(OutboxEmail)
                .where(OutboxEmail.status.in_((QUEUED, SENDING)))
            )
        return int(count or 0)

    # --- the Slack status message ------------------------------------------------------------

    async def claim_notifications(
        self, *, lease: timedelta, limit: int, now: datetime | None = None
    ) -> list[OutboxEmail]:
        """Rows whose status message is behind their state; each is held for `lease`."""
        now = now or utcnow()
        async with self._one_statement() as connection:
            statement = _claim_notifications_statement(connection.dialect.name == "postgresql")
            result = await connection.execute(
                statement, {"now": now, "until": now + lease, "limit": limit}
            )
            return [OutboxEmail(**row._mapping) for row in result]

    async def mark_notified(
        self,
        email_id: str,
        *,
        version: int,
        channel: str,
        ts: str,
        note: str | None,
    ) -> None:
        """Remember which state the status message shows; newer states stay pending.

        Calls that arrive while an earlier batch is being written are written together, in one
        statement batch and one commit (a notifier records up to a batch of rows at once).
        """
        await self._notified.add(
            {"email_id": email_id, "version": version, "channel": channel, "ts": ts, "note": note}
        )

    async def _write_notified(self, batch: list[dict[str, Any]]) -> None:
        async with self._one_statement() as connection:
            statement = _mark_notified_statement(connection.dialect.name == "sqlite")
            await connection.execute(statement, batch if len(batch) > 1 else batch[0])

    async def notify_later(self, email_id: str, *, at: datetime) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxEmail)
                .where(OutboxEmail.id == email_id)
                .values(notify_due_at=at, notify_lease_until=None)
            )

    async def next_notification_at(self) -> datetime | None:
        """When a row behind may be claimed: its due time, or the end of another notifier's
        lease on it (else every other notifier polls without sleeping until the lease ends)."""
        claimable_at = case(
            (
                OutboxEmail.notify_lease_until > OutboxEmail.notify_due_at,
                OutboxEmail.notify_lease_until,
            ),
            else_=OutboxEmail.notify_due_at,
        )
        async with self._sessions() as session:
            due: datetime | None = await session.scalar(
                select(func.min(claimable_at)).where(
                    OutboxEmail.notified_version < OutboxEmail.state_version
                )
            )
        return due


async def _notify_workers(session: AsyncSession, email_id: str) -> None:
    """On PostgreSQL, wake workers in other processes; delivered when this transaction commits."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(OUTBOX_CHANNEL, email_id)))


async def _notify_workers_core(connection: AsyncConnection, email_id: str) -> None:
    if connection.dialect.name == "postgresql":
        await connection.execute(_NOTIFY, {"email_id": email_id})


class CapReached(Exception):
    """The user's hourly sending cap is reached."""

    def __init__(self, cap: int) -> None:
        super().__init__(f"hourly cap of {cap} reached")
        self.cap = cap


async def _check_cap(
    connection: AsyncConnection, user: SlackUser, cap: int, *, since: datetime
) -> None:
    """Count the user's e-mails of the last hour inside the inserting transaction.

    On PostgreSQL a transaction-scoped advisory lock per user makes concurrent submissions, in
    any number of web processes, count one after the other. SQLite has one writer (one process).
    """
    if connection.dialect.name == "postgresql":
        key = f"b24mail-cap:{user.enterprise_id}:{user.team_id}:{user.user_id}"
        await connection.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))
    count = await connection.scalar(
        select(func.count())
        .select_from(OutboxEmail)
        .where(*_owned_by(user), OutboxEmail.created_at >= since)
    )
    if int(count or 0) >= cap:
        raise CapReached(cap)


def _owned_by(user: SlackUser) -> tuple[Any, ...]:
    return (
        OutboxEmail.enterprise_id == user.enterprise_id,
        OutboxEmail.team_id == user.team_id,
        OutboxEmail.slack_user_id == user.user_id,
    )


# --- prebuilt statements ---------------------------------------------------------------------
# Built once, with bind parameters for everything that varies, so neither the statement nor its
# cache key is built again per call.

_TABLE = cast(Table, OutboxEmail.__table__)
_C = _TABLE.c


def _param(name: str, like: str) -> Any:
    """A bind parameter with the type of column `like` (so UTCDateTime and JSON still apply)."""
    return bindparam(name, type_=_C[like].type)


_INSERT = insert(_TABLE)
_NOTIFY = select(func.pg_notify(OUTBOX_CHANNEL, bindparam("email_id")))
_NEXT_QUEUED = select(func.min(_C.next_attempt_at)).where(_C.status == QUEUED)
_NEXT_LEASE_END = select(func.min(_C.lease_expires_at)).where(_C.status == SENDING)
_COUNT_SINCE = (
    select(func.count())
    .select_from(_TABLE)
    .where(
        _C.enterprise_id == _param("enterprise_id", "enterprise_id"),
        _C.team_id == _param("team_id", "team_id"),
        _C.slack_user_id == _param("user_id", "slack_user_id"),
        _C.created_at >= _param("since", "created_at"),
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


def _claim_due_statement(postgres: bool) -> Update:
    key = ("claim_due", postgres)
    if key not in _STATEMENTS:
        now = _param("now", "next_attempt_at")
        due = or_(
            and_(_C.status == QUEUED, _C.next_attempt_at <= now),
            and_(_C.status == SENDING, _C.lease_expires_at <= now),
        )
        candidates = (
            select(_C.id)
            .where(due)
            .order_by(_C.next_attempt_at)
            .limit(bindparam("limit", type_=Integer))
        )
        _STATEMENTS[key] = (
            update(_TABLE)
            .where(_picked(candidates, postgres), due)
            .values(
                status=SENDING,
                lease_owner=_param("owner", "lease_owner"),
                lease_expires_at=_param("until", "lease_expires_at"),
                attempts=_C.attempts + 1,
                updated_at=now,
            )
            .returning(*_C)
        )
    return _STATEMENTS[key]  # type: ignore[no-any-return]


def _claim_notifications_statement(postgres: bool) -> Update:
    key = ("claim_notifications", postgres)
    if key not in _STATEMENTS:
        now = _param("now", "notify_due_at")
        due = and_(
            _C.notify_due_at <= now,
            _C.notified_version < _C.state_version,
            or_(_C.notify_lease_until.is_(None), _C.notify_lease_until <= now),
        )
        candidates = (
            select(_C.id)
            .where(due)
            .order_by(_C.notify_due_at)
            .limit(bindparam("limit", type_=Integer))
        )
        _STATEMENTS[key] = (
            update(_TABLE)
            .where(_picked(candidates, postgres), due)
            .values(
                notify_lease_until=_param("until", "notify_lease_until"),
                notify_attempts=_C.notify_attempts + 1,
            )
            .returning(*_C)
        )
    return _STATEMENTS[key]  # type: ignore[no-any-return]


def _transition_statement(keys: frozenset[str]) -> Update:
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
            update(_TABLE)
            .where(
                _C.id == _param("email_id", "id"),
                _C.status == SENDING,
                _C.lease_owner == _param("owner", "lease_owner"),
            )
            .values(values)
        )
    return _STATEMENTS[key]  # type: ignore[no-any-return]


def _mark_notified_statement(sqlite: bool) -> Update:
    key = ("mark_notified", sqlite)
    if key not in _STATEMENTS:
        version = bindparam("version", type_=Integer)
        newest = (
            func.max(_C.notified_version, version)
            if sqlite
            else func.greatest(_C.notified_version, version)
        )
        _STATEMENTS[key] = (
            update(_TABLE)
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


class _Batcher:
    """Writes parameter sets in batches: the first call writes at once; calls that arrive while
    a write is under way wait for it and go together in the next one. Every caller returns once
    its own parameters are written, or raises what that write raised."""

    def __init__(self, write: Callable[[list[dict[str, Any]]], Awaitable[None]]) -> None:
        self._write = write
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, params: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((params, done))
        if self._writer is None or self._writer.done() or self._writer.get_loop() is not loop:
            self._writer = loop.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._write([params for params, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every caller in the batch
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            except BaseException:  # cancelled (shutdown): so are the callers waiting on it
                for _, done in [*batch, *self._waiting]:
                    done.cancel()
                self._waiting = []
                raise
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
