"""200 concurrent sends to a portal limited to 20 requests/s (burst 10), with and without
the client's limiter: how many 503 QUERY_LIMIT_EXCEEDED the portal sent, and how close the
limited run came to the ideal time ``(sent - burst) / rate``.

Run: ``python -m bench.bitrix24_rate`` (or ``python -m bench`` for all benchmarks).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

from bot.bitrix24 import Bitrix24Client, ClientConfig, OutgoingEmail, parse_webhook_url
from tests.fakes.bitrix24_portal import QUERY_LIMIT_EXCEEDED, FakePortal, RecordedRequest

SENDS = 200
RATE = 20.0
BURST = 10


@dataclass(frozen=True)
class Run:
    label: str
    ok: int
    failed: int
    delivered: int
    requests: int
    rejected: int
    wall: float

    @property
    def ideal(self) -> float:
        return max(self.ok - BURST, 0) / RATE


def _rejected(requests: list[RecordedRequest]) -> int:
    return sum(
        1
        for r in requests
        if r.status == 503
        and isinstance(r.response, dict)
        and r.response.get("error") == QUERY_LIMIT_EXCEEDED
    )


async def _run(label: str, *, limiter: bool) -> Run:
    portal = FakePortal(rate=RATE, burst=BURST).start()
    try:
        user = portal.add_user(1)
        creds = parse_webhook_url(user.webhook_url, allow_insecure=True)
        email = OutgoingEmail(
            from_=user.senders[0][1], to=["bench@example.com"], subject="bench", body="<p>hi</p>"
        )
        config = ClientConfig(rate=RATE, burst=BURST, limiter_enabled=limiter)
        async with Bitrix24Client(config=config) as client:
            started = time.perf_counter()
            results = await asyncio.gather(
                *(
                    client.send(creds, email, idempotency_key=f"bench-{uuid.uuid4()}")
                    for _ in range(SENDS)
                ),
                return_exceptions=True,
            )
            wall = time.perf_counter() - started
        failed = [r for r in results if isinstance(r, BaseException)]
        return Run(
            label=label,
            ok=len(results) - len(failed),
            failed=len(failed),
            delivered=len(portal.delivered),
            requests=len(portal.requests),
            rejected=_rejected(portal.requests),
            wall=wall,
        )
    finally:
        portal.stop()


async def _both() -> tuple[Run, Run]:
    limited = await _run("limiter on", limiter=True)
    naive = await _run("limiter off", limiter=False)
    return limited, naive


def main() -> None:
    print(f"{SENDS} concurrent sends, portal and client at {RATE:g} req/s, burst {BURST}")
    limited, naive = asyncio.run(_both())
    header = f"{'run':<12} {'ok':>4} {'failed':>6} {'delivered':>9} {'requests':>8} {'503s':>5} {'wall s':>7} {'ideal s':>7} {'ratio':>6}"
    print(header)
    for run in (limited, naive):
        ratio = run.wall / run.ideal if run.ideal else float("nan")
        print(
            f"{run.label:<12} {run.ok:>4} {run.failed:>6} {run.delivered:>9} {run.requests:>8} "
            f"{run.rejected:>5} {run.wall:>7.2f} {run.ideal:>7.2f} {ratio:>6.2f}"
        )
    ratio = limited.wall / limited.ideal if limited.ideal else float("nan")
    print(
        f"bitrix24-rate: sent={limited.ok} rejected={limited.rejected} wall={limited.wall:.2f} "
        f"ideal={limited.ideal:.2f} ratio={ratio:.2f} naive_rejected={naive.rejected}",
        flush=True,
    )


if __name__ == "__main__":
    main()
