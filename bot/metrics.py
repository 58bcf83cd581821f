"""Prometheus metrics: what each process counts, and the outbox read from the database at scrape.

Counters and histograms live in the process that records them. `b24mail web` runs several
uvicorn processes behind one port, so it puts them in prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, a private directory made at start): a scrape of any of them sums
all of them. `b24mail worker` is one process: it serves its own /metrics on
B24MAIL_METRICS_PORT. The queue gauges are computed from the database at scrape time, so every
process reports the same, right, value whatever process did the work.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.base import utcnow
from bot.store.models import OutboxEmail, OutboxStatus

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

SENDS = Counter(
    "b24mail_sends",
    "Delivery attempts of e-mails, by outcome: sent, retry (a temporary failure, tried again "
    "later) or failed (given up; the user is told why).",
    ["outcome"],
)
BITRIX24_SECONDS = Histogram(
    "b24mail_bitrix24_request_seconds",
    "Time of one Bitrix24 send, reply or forward call made by the delivery worker (the client's own "
    "rate-limit waits and retries included), whatever its outcome.",
    ["method"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
ACK_SECONDS = Histogram(
    "b24mail_slack_ack_seconds",
    "Time from a Slack request's arrival to its answer (the ack; Slack gives up after 3 s).",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5),
)
SLACK_REQUESTS = Counter(
    "b24mail_slack_requests",
    "Requests to /slack/events by kind and HTTP status (401: bad signature, 400: unreadable).",
    ["kind", "status"],
)
STATUS_MESSAGES = Counter(
    "b24mail_status_messages",
    "Status messages written to Slack (ok) or put off because Slack refused or was "
    "unreachable (deferred; tried again later).",
    ["outcome"],
)

UNDOS = Counter(
    "b24mail_undos",
    "Undo and Cancel clicks on e-mails not yet sent, by outcome: cancelled (never sent) or "
    "too_late (a worker had already taken it; it is sent).",
    ["outcome"],
)
SCHEDULED = Counter(
    "b24mail_scheduled_sends",
    "E-mails submitted with a chosen sending time (Send later), by kind: send or reply.",
    # Labelled, so that (like every counter here) nothing is written before the first one.
    ["kind"],
)

_UNFINISHED = (OutboxStatus.QUEUED, OutboxStatus.SENDING)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROCESS_ENV))


@dataclass(frozen=True)
class OutboxGauges:
    """The outbox at one moment; None when the database did not answer."""

    by_status: dict[str, int] | None
    oldest_created_at: datetime | None


async def read_outbox(engine: AsyncEngine) -> OutboxGauges:
    """One grouped query over the unsent rows (served by the ix_outbox_due index)."""
    statement = (
        select(
            OutboxEmail.status,
            func.count(),
            # Waiting starts when an e-mail is due: a scheduled one is not late before its time.
            func.min(func.coalesce(OutboxEmail.not_before, OutboxEmail.created_at)),
        )
        .where(OutboxEmail.status.in_(_UNFINISHED))
        .group_by(OutboxEmail.status)
    )
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
    except (SQLAlchemyError, OSError):
        return OutboxGauges(None, None)
    by_status: dict[str, int] = dict.fromkeys(_UNFINISHED, 0)
    oldest: datetime | None = None
    for status, count, created in rows:
        by_status[status] = int(count)
        if created is not None and (oldest is None or created < oldest):
            oldest = created
    return OutboxGauges(by_status, oldest)


class _OutboxCollector(Collector):
    def __init__(self, gauges: OutboxGauges) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = self._gauges
        yield GaugeMetricFamily(
            "b24mail_database_up",
            "1 when the database answered this scrape, else 0 (and the outbox gauges are absent).",
            value=0 if gauges.by_status is None else 1,
        )
        if gauges.by_status is None:
            return
        depth = GaugeMetricFamily(
            "b24mail_queue_depth",
            "E-mails not yet sent or failed: queued (waiting, or waiting for a retry) or sending "
            "(claimed by a worker). Read from the database: the same in every process.",
            labels=["status"],
        )
        for status, count in gauges.by_status.items():
            depth.add_metric([status], count)
        yield depth
        age = 0.0
        if gauges.oldest_created_at is not None:
            age = max(0.0, (utcnow() - gauges.oldest_created_at).total_seconds())
        yield GaugeMetricFamily(
            "b24mail_queue_oldest_age_seconds",
            "How long the oldest e-mail not yet sent or failed has waited since it was "
            "due: submitted, or its undo window or chosen time over (0 when there is none).",
            value=age,
        )


async def exposition(engine: AsyncEngine) -> bytes:
    """The Prometheus text for a scrape: this process's (or, in multiprocess mode, all sibling
    processes') counters and histograms, then the outbox gauges read now."""
    gauges = await read_outbox(engine)
    if multiprocess():
        # The default registry would report only this process; the files report them all.
        local = CollectorRegistry()
        MultiProcessCollector(local)  # type: ignore[no-untyped-call]
    else:
        local = REGISTRY
    outbox = CollectorRegistry()
    outbox.register(_OutboxCollector(gauges))
    return generate_latest(local) + generate_latest(outbox)
