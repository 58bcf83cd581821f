"""The audit use case: record what left and what changed, post it, prune it, export it.

Never a body: an audit record holds who, when, from, the recipient addresses, the subject and
the outcome. Records are only ever added; the retention period (B24MAIL_AUDIT_RETENTION_DAYS)
and an uninstall are the only ways one goes.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TextIO

from bot.identity import SlackUser
from bot.mail.errors import NotLinked
from bot.mail.wakeup import Wakeup
from bot.store.audit import (
    EMAIL,
    POLICY,
    AuditRecord,
    AuditRepository,
    NewAuditRecord,
    PostTarget,
)
from bot.store.base import utcnow
from bot.store.models import OutboxEmail, OutboxStatus
from bot.store.policy import PolicyRepository

log = logging.getLogger(__name__)

ExportFormat = Literal["csv", "jsonl"]

# How far back the reconciling sweep looks, and how long it leaves a settled e-mail to the worker.
RECONCILE_WINDOW = timedelta(days=2)
RECONCILE_SETTLE = timedelta(minutes=10)
EXPORT_FIELDS = (
    "id",
    "occurred_at",
    "enterprise_id",
    "team_id",
    "kind",
    "actor",
    "email_id",
    "sender",
    "to",
    "cc",
    "bcc",
    "subject",
    "outcome",
    "detail",
)


class AuditDestination(Protocol):
    """Where a workspace's audit lines go: its policy (row or value) as read for this e-mail."""

    @property
    def audit_channel(self) -> str | None: ...

    @property
    def language(self) -> str | None: ...


class AuditService:
    def __init__(
        self,
        *,
        repository: AuditRepository,
        policies: PolicyRepository,
        wakeup: Wakeup,
        retention_days: int,
    ) -> None:
        self.repository = repository
        self._policies = policies
        self.wakeup = wakeup
        self.retention = timedelta(days=retention_days)

    async def email_left(
        self, row: OutboxEmail, *, outcome: str, policy: AuditDestination | None = None
    ) -> bool:
        """An e-mail was delivered (`sent`) or failed for good (`failed:<code>`); False when it
        already had its record.

        `policy`: the workspace's policy the delivery has just read for this e-mail (no second
        read per e-mail); None reads it here.
        """
        if policy is None:
            post = await self._post_target(row.enterprise_id, row.team_id)
        else:
            post = _post_target_of(policy)
        record_id = await self.repository.append(
            NewAuditRecord(
                enterprise_id=row.enterprise_id,
                team_id=row.team_id,
                kind=EMAIL,
                actor=row.slack_user_id,
                outcome=outcome,
                email_id=row.id,
                sender=row.sender,
                to=row.to_addrs,
                cc=row.cc_addrs,
                bcc=row.bcc_addrs,
                subject=row.subject,
            ),
            post=post,
        )
        if record_id is None:
            return False
        if post is not None:
            self.wakeup.notify()
        return True

    async def policy_changed(
        self,
        actor: SlackUser,
        *,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        channel: str | None,
        language: str | None,
    ) -> None:
        """A policy change, with the policy before and after; posted in the (new) audit channel."""
        post = PostTarget(channel=channel, language=language) if channel else None
        await self.repository.append(
            NewAuditRecord(
                enterprise_id=actor.enterprise_id,
                team_id=actor.team_id,
                kind=POLICY,
                actor=actor.user_id,
                outcome="changed",
                detail={"before": dict(before), "after": dict(after)},
            ),
            post=post,
        )
        if post is not None:
            self.wakeup.notify()

    async def reconcile(self, *, now: datetime | None = None) -> int:
        """Write the records a crash left out: e-mails that became final without one.

        The worker records an e-mail right after marking it sent or failed; a process killed in
        between leaves it unrecorded. This sweep (run by the worker's housekeeping) looks at the
        last RECONCILE_WINDOW, skipping e-mails settled in the last RECONCILE_SETTLE (the worker
        is probably writing those); the unique e-mail id makes a race with it harmless.
        """
        now = now or utcnow()
        written = 0
        rows = await self.repository.unrecorded_emails(
            settled_between=(now - RECONCILE_WINDOW, now - RECONCILE_SETTLE),
            excluded_codes=(NotLinked.code,),
        )
        for row in rows:
            outcome = (
                "sent" if row.status == OutboxStatus.SENT else f"failed:{row.error_code or '?'}"
            )
            if await self.email_left(row, outcome=outcome):
                written += 1
        if written:
            log.warning("audit: wrote %d record(s) that a stopped worker had left out", written)
        return written

    async def prune(self, *, now: datetime | None = None) -> int:
        """Delete the records older than the retention period; returns how many went."""
        removed = await self.repository.prune(before=(now or utcnow()) - self.retention)
        if removed:
            log.info("audit: pruned %d record(s) older than %d days", removed, self.retention.days)
        return removed

    async def _post_target(self, enterprise_id: str, team_id: str) -> PostTarget | None:
        policy = await self._policies.get(enterprise_id=enterprise_id, team_id=team_id)
        return _post_target_of(policy) if policy is not None else None


def _post_target_of(policy: AuditDestination) -> PostTarget | None:
    if not policy.audit_channel:
        return None
    return PostTarget(channel=policy.audit_channel, language=policy.language)


def export_row(record: AuditRecord) -> dict[str, Any]:
    """One record as plain values (lists stay lists; the CSV joins them)."""
    return {
        "id": record.id,
        "occurred_at": record.occurred_at.isoformat(),
        "enterprise_id": record.enterprise_id,
        "team_id": record.team_id,
        "kind": record.kind,
        "actor": record.actor,
        "email_id": record.email_id,
        "sender": record.sender,
        "to": list(record.to_addrs or []),
        "cc": list(record.cc_addrs or []),
        "bcc": list(record.bcc_addrs or []),
        "subject": record.subject,
        "outcome": record.outcome,
        "detail": record.detail,
    }


async def write_export(
    records: AsyncIterator[AuditRecord], out: TextIO, *, fmt: ExportFormat
) -> int:
    """Write records as CSV (a header, addresses joined with "; ", detail as JSON) or JSON lines;
    returns how many were written."""
    count = 0
    writer = None
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
    async for record in records:
        row = export_row(record)
        if writer is not None:
            writer.writerow(
                {
                    **row,
                    "to": "; ".join(row["to"]),
                    "cc": "; ".join(row["cc"]),
                    "bcc": "; ".join(row["bcc"]),
                    "detail": json.dumps(row["detail"], ensure_ascii=False)
                    if row["detail"] is not None
                    else "",
                }
            )
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count
