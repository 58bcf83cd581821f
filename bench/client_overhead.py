"""Per-call cost of ``Bitrix24Client.send`` against a bare ``httpx.AsyncClient.post`` of the
same JSON, URL and headers to the same fake portal: serial calls, interleaved in rounds (the
order flips each round) so drift in the machine or the portal hits both alike.

Run: ``python -m bench.client_overhead`` (or ``python -m bench`` for all benchmarks).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx

from bot.bitrix24 import (
    Bitrix24Client,
    ClientConfig,
    OutgoingEmail,
    PortalLimiters,
    WebhookCredentials,
    parse_webhook_url,
)
from tests.fakes.bitrix24_portal import FakePortal

WARMUP = 50
ROUNDS = 20
PER_ROUND = 30  # calls of each kind per round: ROUNDS * PER_ROUND = 600 each
HUGE = 1e9  # a rate the limiter never has to wait for

Call = Callable[[str], Awaitable[None]]


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _callers(
    client: Bitrix24Client, bare: httpx.AsyncClient, creds: WebhookCredentials, email: OutgoingEmail
) -> tuple[Call, Call]:
    url = creds.api_base + "mail.message.send"
    payload = email.to_payload()
    timeout = httpx.Timeout(
        connect=client.config.connect_timeout,
        read=client.config.read_timeout,
        write=client.config.write_timeout,
        pool=client.config.pool_timeout,
    )

    async def ours(key: str) -> None:
        result = await client.send(creds, email, idempotency_key=key)
        if not result.success or result.replayed:
            raise RuntimeError(f"unexpected send result {result!r}")

    async def plain(key: str) -> None:
        response = await bare.post(
            url,
            json=payload,
            headers={"Accept": "application/json", "Idempotency-Key": key},
            timeout=timeout,
            follow_redirects=False,
        )
        if response.status_code != 200:
            raise RuntimeError(f"bare post answered HTTP {response.status_code}")

    return ours, plain


async def _measure() -> tuple[list[float], list[float]]:
    portal = FakePortal(rate=HUGE, burst=10**9).start()
    try:
        user = portal.add_user(1)
        creds = parse_webhook_url(user.webhook_url, allow_insecure=True)
        email = OutgoingEmail(
            from_=user.senders[0][1],
            to=["bench@example.com"],
            subject="overhead",
            body="<p>Hello</p>",
        )
        config = ClientConfig(rate=HUGE, burst=10**9, limiter_enabled=True)
        limiters = PortalLimiters(rate=HUGE, burst=10**9)
        bare = httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": config.user_agent})
        async with Bitrix24Client(config=config, limiters=limiters) as client, bare:
            ours, plain = _callers(client, bare, creds, email)
            for i in range(WARMUP):
                await ours(f"warm-ours-{i}")
                await plain(f"warm-bare-{i}")
            times: dict[str, list[float]] = {"ours": [], "bare": []}
            for round_ in range(ROUNDS):
                order = [("ours", ours), ("bare", plain)]
                if round_ % 2:
                    order.reverse()
                for name, call in order:
                    for i in range(PER_ROUND):
                        key = f"{name}-{round_}-{i}"
                        started = time.perf_counter()
                        await call(key)
                        times[name].append(time.perf_counter() - started)
        return times["ours"], times["bare"]
    finally:
        portal.stop()


def main() -> None:
    ours, bare = asyncio.run(_measure())
    ours_p50, bare_p50 = _percentile(ours, 0.5) * 1e3, _percentile(bare, 0.5) * 1e3
    ours_p99, bare_p99 = _percentile(ours, 0.99) * 1e3, _percentile(bare, 0.99) * 1e3
    ratio = ours_p50 / bare_p50
    print(
        f"{len(ours)} serial calls each after {WARMUP} warm-up calls, {ROUNDS} interleaved rounds"
    )
    print(f"{'':<22} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'Bitrix24Client.send':<22} {ours_p50:>8.3f} {ours_p99:>8.3f}")
    print(f"{'httpx post':<22} {bare_p50:>8.3f} {bare_p99:>8.3f}")
    print(f"{'ratio':<22} {ratio:>8.2f} {ours_p99 / bare_p99:>8.2f}")
    print(
        f"client-overhead: ours_p50_ms={ours_p50:.3f} bare_p50_ms={bare_p50:.3f} "
        f"ratio={ratio:.2f} ours_p99_ms={ours_p99:.3f} bare_p99_ms={bare_p99:.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
