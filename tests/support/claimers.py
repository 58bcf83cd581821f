"""A bare delivery worker in its own OS process, for races between claims and Undo.

`python -m tests.support.claimers DATABASE_URL OWNER STOP_FILE` claims due outbox rows as fast as
it can, prints each claimed id on stdout, and marks it sent (as a worker does after the portal
said yes), until STOP_FILE exists.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from bot.store.db import create_engine, create_session_factory
from bot.store.outbox import OutboxRepository


async def claim_until(url: str, owner: str, stop: Path) -> None:
    engine = create_engine(url)
    outbox = OutboxRepository(sessions=create_session_factory(engine))
    try:
        while not stop.exists():
            rows = await outbox.claim_due(owner=owner, lease=timedelta(seconds=60), limit=8)
            for row in rows:
                print(row.id, flush=True)
                await outbox.mark_sent(row.id, owner=owner)
            if not rows:
                await asyncio.sleep(0.001)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(claim_until(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
