"""Real `b24mail` processes for tests: started with a clean environment, logged to files, and
ended by their own pid (never by name) when the `Processes` block ends, whatever happened."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from tests.support.databases import pg_database_url

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

# Settings of the caller's shell that would change what the processes do.
_NOT_INHERITED = frozenset(
    {
        "SLACK_APP_TOKEN",
        "SLACK_CLIENT_ID",
        "SLACK_CLIENT_SECRET",
        "DATABASE_URL",
        "PORT",
        "HOST",
        "WEB_CONCURRENCY",
        "LOG_FORMAT",
        "PROMETHEUS_MULTIPROC_DIR",
        "B24MAIL_METRICS_PORT",
        "B24MAIL_METRICS_TOKEN",
    }
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def plain_pg_url(database: str) -> str:
    """The libpq URL of a database on the test server, as an operator writes DATABASE_URL."""
    return pg_database_url(database)


@dataclass
class BotProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def kill9(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self, *, timeout: float) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds until it exited). SIGKILL if it outlives `timeout`."""
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(
                f"{self.name} ignored SIGTERM for {timeout}s; killed. Log:\n{self.tail()}"
            ) from None
        return code, time.monotonic() - started

    def wait_for_log(self, needle: str, *, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if not self.alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name} did not log {needle!r}:\n{self.tail()}")

    def wait_http(self, url: str, *, timeout: float = 30.0) -> None:
        """Until GET `url` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not answer 200 at {url}:\n{self.tail()}")

    async def await_log(self, needle: str, *, timeout: float = 30.0) -> None:
        await asyncio.to_thread(self.wait_for_log, needle, timeout=timeout)

    async def await_http(self, url: str, *, timeout: float = 30.0) -> None:
        await asyncio.to_thread(self.wait_http, url, timeout=timeout)


class Processes:
    """Starts `python -m bot <command>` processes; ends every one still running on exit."""

    def __init__(self, logdir: Path, env: Mapping[str, str]) -> None:
        self.logdir = logdir
        self.env = dict(env)
        self.started: list[BotProcess] = []

    def start(self, name: str, command: str, **env: str) -> BotProcess:
        log = self.logdir / f"{name}.log"
        full_env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        full_env.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **self.env, **env})
        with log.open("ab") as out:
            # cwd is the log directory, so no .env file of the checkout is read.
            popen = subprocess.Popen(
                [sys.executable, "-m", "bot", command],
                cwd=self.logdir,
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = BotProcess(name, popen, log)
        self.started.append(process)
        return process

    def run(self, command: str, *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a command to its end (`migrate`, `check`)."""
        full_env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        full_env.update({"PYTHONPATH": str(ROOT), **self.env})
        return subprocess.run(
            [sys.executable, "-m", "bot", command],
            cwd=self.logdir,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for process in self.started:
            if process.alive():
                with contextlib.suppress(ProcessLookupError):
                    process.popen.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill9()
