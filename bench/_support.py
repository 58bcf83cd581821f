"""Shared pieces of the app benchmarks: subprocesses, fakes, a raw HTTP client, statistics.

Every server binds 127.0.0.1. Every subprocess started here is registered and ended by its
own pid (SIGTERM, then SIGKILL after a grace period) when its `with` block ends, and again
at interpreter exit should anything escape.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.slack import ids
from tests.fakes.slack_requests import (
    interactive_body,
    rich_text_input,
    sign,
    slash_command_body,
    static_select,
    text_input,
    view_submission,
)

HOST = "127.0.0.1"
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"
BOT_TOKEN = "xoxb-test-token"  # FakeSlack's default token
ROOT = Path(__file__).resolve().parent.parent

# Settings that would switch the app to Socket Mode or OAuth if the caller's shell has them.
_UNSET = frozenset({"SLACK_APP_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "DATABASE_URL"})

_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def _end_all() -> None:
    for proc in list(_LIVE.values()):
        _end(proc)


atexit.register(_end_all)


def _end(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """End one process we started, by its pid: SIGTERM, then SIGKILL after `grace` seconds."""
    _LIVE.pop(proc.pid, None)
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    """A subprocess of ours, with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for {self.name}")

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode}; log tail:\n{self.tail()}"
            )

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def started(
    name: str, args: Sequence[str], *, env: Mapping[str, str] | None = None, logdir: Path
) -> Iterator[Proc]:
    """Run `python <args>` from the project root; ended by pid when the block ends."""
    log = logdir / f"{name}.log"
    full_env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    full_env.update({"PYTHONUNBUFFERED": "1", **(env or {})})
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    _LIVE[popen.pid] = popen
    proc = Proc(name, popen, log)
    try:
        yield proc
    finally:
        _end(popen)


def wait_http(proc: Proc, url: str, *, timeout: float = 30.0) -> None:
    """Poll `url` until it answers (any status below 500), at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{proc.name} did not answer {url} within {timeout}s:\n{proc.tail()}")


# ------------------------------------------------------------------------------ fakes


@dataclass
class Fakes:
    slack_api_url: str
    portal_url: str
    slack: Proc
    portal: Proc

    def portal_post(self, name: str, body: Any) -> Any:
        response = httpx.post(f"{self.portal_url}/_fake/{name}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def portal_user(self, user_id: int) -> dict[str, Any]:
        return dict(self.portal_post("users", {"user_id": user_id}))

    def latency(self, seconds: float, phase: str = "before") -> None:
        self.portal_post("faults", {"latency": {"seconds": seconds, "phase": phase}})

    def delivered(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.portal_url}/_fake/delivered", timeout=60)
        response.raise_for_status()
        return list(response.json()["delivered"])


@contextlib.contextmanager
def fakes(logdir: Path) -> Iterator[Fakes]:
    """FakeSlack and a FakePortal without a rate limit, each in its own process."""
    slack_port, portal_port = free_port(), free_port()
    with (
        started(
            "fake-slack",
            ["-m", "tests.fakes.slack_api", "--host", HOST, "--port", str(slack_port)],
            logdir=logdir,
        ) as slack,
        started(
            "fake-portal",
            [
                "-m",
                "tests.fakes.bitrix24_portal",
                "--host",
                HOST,
                "--port",
                str(portal_port),
                "--rate",
                "1e6",
                "--burst",
                "1000000",
            ],
            logdir=logdir,
        ) as portal,
    ):
        slack_url = f"http://{HOST}:{slack_port}"
        portal_url = f"http://{HOST}:{portal_port}"
        wait_http(slack, f"{slack_url}/_fake/calls")
        wait_http(portal, f"{portal_url}/_fake/health")
        yield Fakes(f"{slack_url}/api/", portal_url, slack, portal)


def app_env(fakes: Fakes, database_url: str, port: int, **extra: str) -> dict[str, str]:
    """The environment of `b24mail serve` / `b24mail worker` under the benchmark."""
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fakes.slack_api_url,
        "DATABASE_URL": database_url,
        "HOST": HOST,
        "PORT": str(port),
        "LOG_LEVEL": "INFO",
        "B24MAIL_ALLOW_INSECURE_PORTALS": "true",
        # Delivery is measured from the ack: no undo window before it.
        "B24MAIL_UNDO_SECONDS": "0",
        # The fake portal has no rate limit; neither may the client's own limiter, or we
        # would measure the limiter.
        "BITRIX24_RATE": "1000000",
        "BITRIX24_REQUEST_LIMIT": "1",  # the fake portal never runs a request for long
        "BITRIX24_BURST": "1000000",
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def tempdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="b24mail-bench-") as name:
        yield Path(name)


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (SQLAlchemy URL), dropped afterwards."""
    from tests.support.databases import create_pg_database, drop_pg_database

    name, url = create_pg_database("b24mail_bench")
    try:
        yield url
    finally:
        drop_pg_database(name)


# ------------------------------------------------------------------------------ raw HTTP


class RawHTTP:
    """One keep-alive HTTP/1.1 connection over asyncio streams: the load generator.

    Requests are prepared bytes; the client does no parsing beyond the status line and
    Content-Length, so its own cost is the same small constant for every server measured.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawHTTP:
        reader, writer = await asyncio.open_connection(HOST, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, raw: bytes, *, timeout: float = 10.0) -> tuple[int, bytes]:
        async with asyncio.timeout(timeout):
            self._writer.write(raw)
            head = await self._reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                key, _, value = line.partition(b":")
                key = key.strip().lower()
                if key == b"content-length":
                    length = int(value.strip())
                elif key == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                body = b""
                while True:
                    size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    chunk = await self._reader.readexactly(size + 2)
                    if size == 0:
                        break
                    body += chunk[:-2]
                return status, body
            body = await self._reader.readexactly(length) if length else b""
            return status, body

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


def signed_post(port: int, body: str, *, path: str = "/slack/events") -> bytes:
    """A signed POST as Slack sends it, ready to write to a socket."""
    raw = body.encode()
    headers = sign(raw, signing_secret=SIGNING_SECRET)
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        f"Content-Type: {headers['Content-Type']}",
        f"Content-Length: {len(raw)}",
        f"X-Slack-Request-Timestamp: {headers['X-Slack-Request-Timestamp']}",
        f"X-Slack-Signature: {headers['X-Slack-Signature']}",
        "User-Agent: Slackbot 1.0 (+https://api.slack.com/robots)",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + raw


def help_request(port: int, *, slack_api_url: str, user: str) -> bytes:
    response_url = f"{slack_api_url.rsplit('/api/', 1)[0]}/response/bench"
    return signed_post(
        port, slash_command_body(text="help", user_id=user, response_url=response_url)
    )


def user_id(n: int) -> str:
    return f"U{n:05d}"


def connect_request(port: int, webhook_url: str, *, user: str) -> bytes:
    payload = view_submission(
        callback_id=ids.CONNECT_VIEW,
        values={ids.CONNECT_URL_BLOCK: {ids.CONNECT_URL_ACTION: text_input(webhook_url)}},
        user_id=user,
    )
    return signed_post(port, interactive_body(payload))


def compose_request(port: int, *, user: str, sender: str, subject: str, view_id: str) -> bytes:
    """A valid compose submission; `view_id` makes its submission key unique."""
    values = {
        ids.FROM_BLOCK: {ids.FROM_ACTION: static_select(sender)},
        ids.TO_BLOCK: {ids.ADDRESSES_ACTION: text_input("Bob <bob@client.example>")},
        ids.CC_BLOCK: {ids.ADDRESSES_ACTION: text_input(None)},
        ids.BCC_BLOCK: {ids.ADDRESSES_ACTION: text_input(None)},
        ids.SUBJECT_BLOCK: {ids.SUBJECT_ACTION: text_input(subject)},
        ids.BODY_BLOCK: {ids.BODY_ACTION: rich_text_input("Hello Bob,\nthe report is attached.")},
        ids.POST_TO_BLOCK: {
            ids.POST_TO_ACTION: {"type": "conversations_select", "selected_conversation": "C0001"}
        },
    }
    payload = view_submission(
        callback_id=ids.COMPOSE_VIEW,
        values=values,
        private_metadata=json.dumps({"channel_id": "C0001"}),
        view_id=view_id,
        view_hash="h1",
        user_id=user,
    )
    return signed_post(port, interactive_body(payload))


async def link_users(port: int, fakes: Fakes, users: int) -> dict[str, str]:
    """Link Slack users U00001… to portal users 1… through `/b24mail connect`'s modal.

    Returns {slack user id: sender address}.
    """
    senders: dict[str, str] = {}
    conn = await RawHTTP.connect(port)
    try:
        for n in range(1, users + 1):
            portal_user = fakes.portal_user(n)
            status, body = await conn.request(
                connect_request(port, portal_user["webhook_url"], user=user_id(n))
            )
            if status != 200 or b'"update"' not in body:
                raise RuntimeError(f"connect failed for user {n}: {status} {body[:300]!r}")
            senders[user_id(n)] = str(portal_user["senders"][0][1])
    finally:
        await conn.close()
    return senders


# ------------------------------------------------------------------------------ statistics


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds: float) -> float:
    return seconds * 1000.0
