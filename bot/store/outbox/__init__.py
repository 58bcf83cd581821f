"""The outbox: durable e-mails, claimed by workers under a lease, and their pending Slack status.

Claims are one UPDATE … RETURNING over a sub-select of due rows. On PostgreSQL the sub-select
takes `FOR UPDATE SKIP LOCKED`, so concurrent workers never take the same row; SQLite runs one
writer at a time, which gives the same guarantee. A row whose lease ran out (its worker died) is
due again; the Idempotency-Key (the row id) makes the second attempt safe.
"""

from bot.store.models import OutboxStatus
from bot.store.outbox.notifications import StatusNotifications
from bot.store.outbox.queue import CapReached, DeliveryQueue, NewEmail

__all__ = ["CapReached", "NewEmail", "OutboxRepository", "OutboxStatus"]


class OutboxRepository(DeliveryQueue, StatusNotifications):
    """One outbox row serves two workers: the delivery queue and the status notifier."""
