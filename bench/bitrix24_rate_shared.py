"""Three OS processes sending through one PostgreSQL-shared budget to one portal limited to
2 requests/s, burst 50 (Bitrix24's cloud limit): how many 503 QUERY_LIMIT_EXCEEDED the portal
sent, and how close the run came to the ideal time ``(sent - burst) / rate``.

Run: ``python -m bench.bitrix24_rate_shared`` (about two minutes: 250 requests past the burst
at 2 per second). Needs PostgreSQL at ``B24MAIL_TEST_PG_ADMIN_URL`` (default: trust auth on
127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PROCESSES = 3
SENDS_EACH = 100
RATE = 2.0
BURST = 50
# Time for every process to import, connect and wait at the line, so they start together.
START_DELAY = 4.0
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SharedRun:
    processes: int
    sent: int
    failed: int
    delivered: int
    rejected: int
    wall: float
    rate: float
    burst: int

    @property
    def ideal(self) -> float:
        return max(self.sent - self.burst, 0) / self.rate

    @property
    def ratio(self) -> float:
        return self.wall / self.ideal if self.ideal else float("nan")

    def line(self) -> str:
        return (
            f"bitrix24-rate-shared: processes={self.processes} sent={self.sent} "
            f"rejected={self.rejected} wall={self.wall:.2f} ideal={self.ideal:.2f} "
            f"ratio={self.ratio:.2f}"
        )


async def _send_all(
    database_url: str,
    webhook: str,
    sends: int,
    start_at: float,
    rate: float,
    burst: int,
    *,
    local: bool,
) -> dict[str, float]:
    """One process's share: `sends` concurrent sends, paced by the shared limiter (or, with
    `local`, by this process's own buckets only: the comparison)."""
    from bot.bitrix24 import (
        Bitrix24Client,
        ClientConfig,
        OutgoingEmail,
        PortalLimiters,
        headroom_slots,
        parse_webhook_url,
    )
    from bot.store.db import create_engine
    from bot.store.rate_limits import SharedRateLimiter

    engine = create_engine(database_url)
    own = PortalLimiters(rate=rate, burst=burst)
    limiter = own
    if not local:
        limiter = SharedRateLimiter(
            engine=engine,
            rate=rate,
            burst=burst,
            headroom=headroom_slots(rate, burst),
            fallback=own,
        )
    creds = parse_webhook_url(webhook, allow_insecure=True)
    # The fake portal's user 1 sends as user1@example.com.
    email = OutgoingEmail(
        from_="user1@example.com", to=["bench@example.com"], subject="bench", body="<p>hi</p>"
    )
    async with engine.connect():
        pass  # connect before the start line, not on the clock
    # The comparison only counts refusals: it does not wait out back-offs to deliver them.
    config = ClientConfig(rate=rate, burst=burst, rate_limit_retries=0 if local else 20)
    async with Bitrix24Client(config=config, limiters=limiter) as client:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        results = await asyncio.gather(
            *(
                client.send(creds, email, idempotency_key=f"shared-{uuid.uuid4()}")
                for _ in range(sends)
            ),
            return_exceptions=True,
        )
    await engine.dispose()
    failed = sum(1 for r in results if isinstance(r, BaseException))
    return {"ok": len(results) - failed, "failed": failed, "end": time.time()}


def run_shared(
    *,
    database_url: str,
    processes: int = PROCESSES,
    sends_each: int = SENDS_EACH,
    rate: float = RATE,
    burst: int = BURST,
    local: bool = False,
    logdir: Path,
) -> SharedRun:
    """Start a fake portal here and `processes` senders as OS processes; wait for all of them."""
    from tests.fakes.bitrix24_portal import QUERY_LIMIT_EXCEEDED, FakePortal

    portal = FakePortal(rate=rate, burst=burst).start()
    popens: list[subprocess.Popen[bytes]] = []
    try:
        user = portal.add_user(1)
        start_at = time.time() + START_DELAY
        for n in range(processes):
            out = (logdir / f"sender-{n}.json").open("wb")
            popens.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "bench.bitrix24_rate_shared",
                        "--sender",
                        database_url,
                        user.webhook_url,
                        str(sends_each),
                        repr(start_at),
                        repr(rate),
                        str(burst),
                        "local" if local else "shared",
                    ],
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
            out.close()
        for popen in popens:
            popen.wait(timeout=sends_each * processes / rate + 120)
        reports = []
        for n in range(processes):
            text = (logdir / f"sender-{n}.json").read_text()
            try:
                reports.append(json.loads(text.strip().splitlines()[-1]))
            except (ValueError, IndexError):
                raise RuntimeError(f"sender {n} failed:\n{text[-3000:]}") from None
        rejected = sum(
            1
            for r in portal.requests
            if r.status == 503
            and isinstance(r.response, dict)
            and r.response.get("error") == QUERY_LIMIT_EXCEEDED
        )
        return SharedRun(
            processes=processes,
            sent=sum(int(r["ok"]) for r in reports),
            failed=sum(int(r["failed"]) for r in reports),
            delivered=len(portal.delivered),
            rejected=rejected,
            wall=max(float(r["end"]) for r in reports) - start_at,
            rate=rate,
            burst=burst,
        )
    finally:
        for popen in popens:
            # Ours, by pid: a sender still running after its time-out is ended.
            if popen.poll() is None:
                popen.kill()
                popen.wait(timeout=5)
        portal.stop()


def main() -> None:
    from bench._support import pg_database, tempdir

    print(
        f"{PROCESSES} processes x {SENDS_EACH} concurrent sends through one PostgreSQL-shared "
        f"budget; portal at {RATE:g} req/s, burst {BURST}",
        flush=True,
    )
    with pg_database() as url, tempdir() as logdir:
        from bot.store.db import create_engine
        from bot.store.migrations import upgrade

        async def migrate() -> None:
            engine = create_engine(url)
            await upgrade(engine)
            await engine.dispose()

        asyncio.run(migrate())
        result = run_shared(database_url=url, logdir=logdir)
    print(result.line(), f"failed={result.failed} delivered={result.delivered}", flush=True)


def _sender(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    for name in ("database_url", "webhook", "sends", "start_at", "rate", "burst", "mode"):
        parser.add_argument(name)
    args = parser.parse_args(argv)
    report = asyncio.run(
        _send_all(
            args.database_url,
            args.webhook,
            int(args.sends),
            float(args.start_at),
            float(args.rate),
            int(args.burst),
            local=args.mode == "local",
        )
    )
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--sender":
        _sender(sys.argv[2:])
    else:
        main()
