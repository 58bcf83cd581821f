"""Ack latency and throughput: signed `/b24mail help` to `b24mail serve` against a bare Bolt
app that only acks (both real subprocesses, same uvicorn settings, same raw keep-alive
HTTP/1.1 load generator). Serial and at concurrency 16, in rounds whose order flips each
round, so drift on a noisy machine hits both alike.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench._support import RawHTTP, help_request, ms, percentile

WARMUP = 200
SERIAL_ROUNDS = 30
SERIAL_PER_ROUND = 25  # 750 serial requests each
CONCURRENCY = 16
CONC_ROUNDS = 10
CONC_PER_ROUND = 320  # 3200 concurrent requests each
ROUND_TIMEOUT = 120.0


@dataclass
class Side:
    name: str
    port: int
    serial: list[float]
    concurrent: list[float]
    conc_requests: int = 0
    conc_wall: float = 0.0

    @property
    def rps(self) -> float:
        return self.conc_requests / self.conc_wall if self.conc_wall else 0.0


@dataclass
class AckResult:
    ours: Side
    bolt: Side

    def rows(self) -> list[tuple[str, str]]:
        out = []
        for side in (self.ours, self.bolt):
            out.append(
                (
                    f"ack {side.name} serial (n={len(side.serial)})",
                    f"p50 {ms(percentile(side.serial, 0.5)):.2f} ms  "
                    f"p99 {ms(percentile(side.serial, 0.99)):.2f} ms",
                )
            )
            out.append(
                (
                    f"ack {side.name} c={CONCURRENCY} (n={len(side.concurrent)})",
                    f"p50 {ms(percentile(side.concurrent, 0.5)):.2f} ms  "
                    f"p99 {ms(percentile(side.concurrent, 0.99)):.2f} ms  {side.rps:.0f} req/s",
                )
            )
        return out

    def summary(self) -> str:
        o50, b50 = ms(percentile(self.ours.serial, 0.5)), ms(percentile(self.bolt.serial, 0.5))
        o99, b99 = ms(percentile(self.ours.serial, 0.99)), ms(percentile(self.bolt.serial, 0.99))
        return (
            f"ack: ours_p50_ms={o50:.2f} bolt_p50_ms={b50:.2f} p50_ratio={o50 / b50:.2f} "
            f"ours_p99_ms={o99:.2f} bolt_p99_ms={b99:.2f} ours_rps={self.ours.rps:.0f} "
            f"bolt_rps={self.bolt.rps:.0f} rps_ratio={self.ours.rps / self.bolt.rps:.2f}"
        )


async def _check(status: int, body: bytes, side: Side) -> None:
    if status != 200:
        raise RuntimeError(f"{side.name} answered {status}: {body[:300]!r}")


async def _serial(side: Side, conn: RawHTTP, requests: list[bytes], out: list[float]) -> None:
    for raw in requests:
        started = time.perf_counter()
        status, body = await conn.request(raw)
        out.append(time.perf_counter() - started)
        await _check(status, body, side)


async def _concurrent(side: Side, conns: list[RawHTTP], requests: list[bytes]) -> None:
    queue = list(reversed(requests))

    async def client(conn: RawHTTP) -> None:
        while queue:
            raw = queue.pop()
            started = time.perf_counter()
            status, body = await conn.request(raw)
            side.concurrent.append(time.perf_counter() - started)
            await _check(status, body, side)

    started = time.perf_counter()
    async with asyncio.timeout(ROUND_TIMEOUT):
        await asyncio.gather(*(client(c) for c in conns))
    side.conc_wall += time.perf_counter() - started
    side.conc_requests += len(requests)


async def measure(*, ours_port: int, bolt_port: int, slack_api_url: str, user: str) -> AckResult:
    """`user` should be linked, so that b24mail's help shows the linked variant."""
    sides = [Side("b24mail", ours_port, [], []), Side("bare Bolt", bolt_port, [], [])]

    def batch(side: Side, n: int) -> list[bytes]:
        return [help_request(side.port, slack_api_url=slack_api_url, user=user) for _ in range(n)]

    serial_conns = {s.name: await RawHTTP.connect(s.port) for s in sides}
    conc_conns = {
        s.name: [await RawHTTP.connect(s.port) for _ in range(CONCURRENCY)] for s in sides
    }
    try:
        first = await serial_conns[sides[0].name].request(batch(sides[0], 1)[0])
        if b"help" not in first[1].lower() and b"blocks" not in first[1]:
            raise RuntimeError(f"b24mail's help ack looks wrong: {first[1][:300]!r}")
        for side in sides:
            warm: list[float] = []
            await _serial(side, serial_conns[side.name], batch(side, WARMUP), warm)
            await _concurrent(side, conc_conns[side.name], batch(side, WARMUP))
            side.concurrent.clear()
            side.conc_requests, side.conc_wall = 0, 0.0
        for round_ in range(SERIAL_ROUNDS):
            order = sides if round_ % 2 == 0 else sides[::-1]
            for side in order:
                await _serial(
                    side, serial_conns[side.name], batch(side, SERIAL_PER_ROUND), side.serial
                )
        for round_ in range(CONC_ROUNDS):
            order = sides if round_ % 2 == 0 else sides[::-1]
            for side in order:
                await _concurrent(side, conc_conns[side.name], batch(side, CONC_PER_ROUND))
    finally:
        for conn in [*serial_conns.values(), *(c for cs in conc_conns.values() for c in cs)]:
            await conn.close()
    return AckResult(ours=sides[0], bolt=sides[1])
