"""The delivery worker: claims due outbox rows and sends them through Bitrix24, exactly once.

Exactly once rests on three things: the row id is the Idempotency-Key (a repeat after a crash or
time-out is replayed by the portal, not sent again); a claim is a lease held by one worker at a
time; and an attempt is cut off before its lease ends, so no two attempts for one key overlap.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot import metrics
from bot.bitrix24 import (
    Bitrix24Client,
    Bitrix24Error,
    ForwardFailed,
    OperationTimeLimit,
    OutgoingEmail,
    PortalMoved,
    PortalOverloaded,
    PortalTimeout,
    ReplyFailed,
    SendFailed,
    TransportError,
)
from bot.identity import SlackUser
from bot.logs import correlation
from bot.mail.addresses import bare_address
from bot.mail.audit import AuditService
from bot.mail.backoff import backoff_delay
from bot.mail.errors import MailError, NotLinked
from bot.mail.linking import LinkService
from bot.mail.policy import PolicyRefused, PolicyService, WorkspacePolicy
from bot.mail.wakeup import Wakeup
from bot.store.base import utcnow
from bot.store.models import OutboxEmail
from bot.store.outbox import OutboxRepository

log = logging.getLogger(__name__)

DETAIL_MAX = 500


@dataclass(frozen=True, kw_only=True)
class DeliveryConfig:
    lease: timedelta = timedelta(seconds=120)
    batch: int = 16
    concurrency: int = 8
    idle_poll: float = 5.0  # how often to look for work nobody woke us for (other processes)
    backoff_base: float = 5.0
    backoff_max: float = 300.0
    overload_backoff: float = 120.0


class DeliveryWorker:
    def __init__(
        self,
        *,
        outbox: OutboxRepository,
        links: LinkService,
        bitrix24: Bitrix24Client,
        wakeup: Wakeup,
        on_change: Callable[[], None],
        config: DeliveryConfig | None = None,
        policy: PolicyService | None = None,
        audit: AuditService | None = None,
    ) -> None:
        self._outbox = outbox
        self._policy = policy
        self._audit = audit
        self._links = links
        self._bitrix24 = bitrix24
        self._wakeup = wakeup
        self._on_change = on_change
        self._config = config or DeliveryConfig()
        self.owner = f"worker-{uuid.uuid4().hex[:12]}"
        self._slots = asyncio.Semaphore(self._config.concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping: asyncio.Event | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then finish what is in flight. A row claimed but not yet
        handed to Bitrix24 when `stop` is set goes back to the queue untouched (release)."""
        self._stopping = stop
        log.info("delivery worker %s started", self.owner)
        try:
            while not stop.is_set():
                claimed = await self.run_once()
                if claimed:
                    continue
                await self._wakeup.wait(await self._sleep_time())
        finally:
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            log.info("delivery worker %s stopped", self.owner)

    async def run_once(self) -> int:
        """Claim what is due (as many as there are free slots) and start sending it."""
        free = self._config.concurrency - len(self._in_flight)
        if free <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return 1
        rows = await self._outbox.claim_due(
            owner=self.owner, lease=self._config.lease, limit=min(free, self._config.batch)
        )
        for row in rows:
            task = asyncio.create_task(self._deliver_guarded(row), name=f"deliver-{row.id}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(rows)

    def _since_claim(self, row: OutboxEmail) -> float:
        """Seconds since this worker claimed `row` (its lease ends one lease after the claim)."""
        if row.lease_expires_at is None:
            return 0.0
        claimed_at = row.lease_expires_at - self._config.lease
        return max(0.0, (utcnow() - claimed_at).total_seconds())

    async def _sleep_time(self) -> float:
        due = await self._outbox.next_due_at()
        if due is None:
            return self._config.idle_poll
        return max(0.0, min(self._config.idle_poll, (due - utcnow()).total_seconds()))

    async def _deliver_guarded(self, row: OutboxEmail) -> None:
        async with self._slots:
            try:
                with correlation(row.id):
                    await self.deliver(row)
            except Exception:
                # The row keeps its lease and is taken again when it expires; say so loudly.
                log.exception("delivery of %s crashed; it will be retried after its lease", row.id)
            finally:
                # A slot is free and the row may be due again soon (a retry): look again now
                # rather than at the next idle poll.
                self._wakeup.notify()

    async def deliver(self, row: OutboxEmail) -> None:
        user = SlackUser(
            team_id=row.team_id, user_id=row.slack_user_id, enterprise_id=row.enterprise_id
        )
        started = utcnow()
        try:
            link = await self._links.require_stored(user)
            policy = await self._check_policy(row)
            credentials = self._links.credentials(link)
            # The docs describe to/cc/bcc as arrays of e-mail addresses: names stay in our texts.
            email = OutgoingEmail(
                from_=row.sender,
                to=[bare_address(a) for a in row.to_addrs],
                cc=[bare_address(a) for a in row.cc_addrs],
                bcc=[bare_address(a) for a in row.bcc_addrs],
                subject=row.subject,
                body=row.body_html,
            )
            # End the attempt early enough that its last request has surely finished on the
            # portal (which may run one for `portal_request_limit`) before the lease ends and
            # another worker may take the row: two requests with one key at once may both run.
            limit = self._bitrix24.config.portal_request_limit
            full = self._config.lease.total_seconds() - limit - 5
            # Counted from the claim, not from here: on a starved machine (or while the database
            # reconnects) reading the link can take seconds of the lease, and an attempt given
            # the whole budget from now could then outlive it.
            left = full - self._since_claim(row)
            budget = max(1.0, left)
            if self._stopping is not None and self._stopping.is_set():
                # Graceful shutdown: nothing was asked of the portal yet, so another worker may
                # take the row at once instead of after the lease.
                if await self._outbox.release(row.id, owner=self.owner):
                    log.info("email=%s released: this worker is stopping", row.id)
                return
            if full >= 1.0 and left < 1.0:
                # Too little of the lease is left for an attempt that surely ends before another
                # worker may take the row: hand it back untouched, to be claimed afresh.
                if await self._outbox.release(row.id, owner=self.owner):
                    log.warning(
                        "email=%s released: %.1fs of its lease went before the call",
                        row.id,
                        self._since_claim(row),
                    )
                return
            call_started = time.perf_counter()
            try:
                async with asyncio.timeout(budget):
                    if row.kind == "forward" and row.forward_message_id is not None:
                        result = await self._bitrix24.forward(
                            credentials,
                            email,
                            forward_message_id=row.forward_message_id,
                            idempotency_key=row.id,
                        )
                    elif row.kind == "reply" and row.reply_to_message_id is not None:
                        result = await self._bitrix24.reply(
                            credentials,
                            email,
                            reply_to_message_id=row.reply_to_message_id,
                            idempotency_key=row.id,
                        )
                    else:
                        result = await self._bitrix24.send(
                            credentials, email, idempotency_key=row.id
                        )
            except TimeoutError as exc:
                raise PortalTimeout(
                    "the attempt ran out of time", may_have_reached_portal=True
                ) from exc
            finally:
                method = _method_label(row)
                metrics.BITRIX24_SECONDS.labels(method).observe(time.perf_counter() - call_started)
            if not result.success:
                # A 200 that says success: false is a refusal without a cause: never "Sent".
                failed = {"reply": ReplyFailed, "forward": ForwardFailed}.get(row.kind, SendFailed)
                raise failed("Bitrix24 answered success: false", may_have_reached_portal=False)
        except Bitrix24Error as exc:
            await self._failed_attempt(row, exc.code, exc, transient=exc.transient, started=started)
        except MailError as exc:
            await self._failed_attempt(row, exc.code, exc, transient=False, started=started)
        else:
            # The sender to preselect next time; one write fewer when it did not change.
            sent = await self._outbox.mark_sent(row.id, owner=self.owner)
            if sent:
                await self._record(row, "sent", policy)
            if sent and link.last_sender != row.sender:
                await self._links.remember_sender(user, row.sender)
            metrics.SENDS.labels("sent").inc()
            took_ms = int((utcnow() - started).total_seconds() * 1000)
            log.info(
                "sent email=%s kind=%s attempt=%d",
                row.id,
                row.kind,
                row.attempts,
                extra=_attempt_fields(row, "sent", took_ms),
            )
        self._on_change()

    async def _failed_attempt(
        self,
        row: OutboxEmail,
        code: str,
        error: Exception,
        *,
        transient: bool,
        started: datetime | None = None,
    ) -> None:
        detail = _portal_detail(error)
        now = utcnow()
        took_ms = int((now - started).total_seconds() * 1000) if started else None
        retry_at = self._retry_at(row, error, now) if transient else None
        if retry_at is not None and retry_at <= row.deadline_at:
            await self._outbox.mark_retry(
                row.id, owner=self.owner, at=retry_at, code=code, detail=detail
            )
            metrics.SENDS.labels("retry").inc()
            log.warning(
                "email=%s attempt=%d failed (%s); retrying at %s",
                row.id,
                row.attempts,
                code,
                retry_at.isoformat(),
                extra=_attempt_fields(row, "retry", took_ms, code=code),
            )
            return
        final_code = "gave_up" if transient else code
        failed = await self._outbox.mark_failed(
            row.id, owner=self.owner, code=final_code, detail=detail
        )
        # An e-mail whose sender has no link (disconnected, or the workspace uninstalled b24mail
        # and its audit log went with it) never left: nothing to audit.
        if failed and final_code != NotLinked.code:
            await self._record(row, f"failed:{final_code}")
        metrics.SENDS.labels("failed").inc()
        log.warning(
            "email=%s failed for good (%s, last error %s)",
            row.id,
            final_code,
            code,
            extra=_attempt_fields(row, "failed", took_ms, code=final_code),
        )

    async def _check_policy(self, row: OutboxEmail) -> WorkspacePolicy | None:
        """The workspace's policy may have changed since the e-mail was queued: check it again.

        Only its hard rules: the "ask before sending outside" question was for the sender at
        submission, and cannot be asked now. Returns the policy read, for the audit record.
        """
        if self._policy is None:
            return None
        policy = await self._policy.of_team(enterprise_id=row.enterprise_id, team_id=row.team_id)
        verdict = self._policy.check(policy, [*row.to_addrs, *row.cc_addrs, *row.bcc_addrs])
        if verdict.refusal is not None:
            log.warning(
                "email=%s refused by the workspace policy at delivery: %s",
                row.id,
                verdict.refusal.rule,
            )
            raise PolicyRefused(verdict.refusal)
        return policy

    async def _record(
        self, row: OutboxEmail, outcome: str, policy: WorkspacePolicy | None = None
    ) -> None:
        """The audit record of an e-mail that left; its failure never undoes or repeats a send."""
        if self._audit is None:
            return
        try:
            await self._audit.email_left(row, outcome=outcome, policy=policy)
        except Exception:
            log.exception("audit record of email=%s (%s) not written", row.id, outcome)

    def _retry_at(self, row: OutboxEmail, error: Exception, now: datetime) -> datetime:
        config = self._config
        delay = backoff_delay(row.attempts, base=config.backoff_base, cap=config.backoff_max)
        if isinstance(error, PortalOverloaded):
            delay = max(delay, config.overload_backoff)
        if isinstance(error, OperationTimeLimit) and error.reset_at is not None:
            return max(error.reset_at, now + timedelta(seconds=1))
        if isinstance(error, TransportError) and error.may_have_reached_portal:
            # The send may still be running on the portal: retry only once it cannot be.
            delay = max(delay, self._bitrix24.config.portal_request_limit)
        return now + timedelta(seconds=delay)


def _method_label(row: OutboxEmail) -> str:
    """The Bitrix24 method an attempt called, as a metrics label."""
    if row.kind == "forward" and row.forward_message_id is not None:
        return "forward"
    return "reply" if row.kind == "reply" and row.reply_to_message_id else "send"


def _attempt_fields(
    row: OutboxEmail, outcome: str, took_ms: int | None, *, code: str | None = None
) -> dict[str, object]:
    """The structured form of an attempt's log line (keys in JSON logs)."""
    fields: dict[str, object] = {
        "event": "delivery_attempt",
        "email": row.id,
        "kind": row.kind,
        "outcome": outcome,
        "attempt": row.attempts,
        "duration_ms": took_ms,
    }
    if code is not None:
        fields["code"] = code
    return {"fields": fields}


def _portal_detail(error: Exception) -> str | None:
    """The portal's own words (often in the portal's language), shown under our explanation.

    For a moved portal it is the new host, which the explanation names.
    """
    if isinstance(error, PortalMoved):
        return error.new_host
    if isinstance(error, PolicyRefused):
        return error.refusal.describe()
    message = getattr(error, "portal_message", None)
    if not message:
        return None
    return str(message)[:DETAIL_MAX]
