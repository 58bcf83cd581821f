"""The chaos run's machinery: a private PostgreSQL, the b24mail processes, signed Slack requests.

Everything binds 127.0.0.1. Every process started here is ours and is ended by its own pid
(never by name); the private PostgreSQL cluster lives in a temporary directory that is stopped
and removed on exit, on failure and on Ctrl-C (the caller's try/finally, and atexit here).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.slack import ids
from tests.fakes.slack_requests import (
    interactive_body,
    rich_text_input,
    sign,
    static_select,
    text_input,
    view_submission,
)

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
SIGNING_SECRET = "chaos-signing-secret-0123456789abcdef"

# Settings that would change what the app does if the caller's shell happens to have them.
_INHERITED_UNSET = frozenset(
    {"SLACK_APP_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "DATABASE_URL", "PORT", "HOST"}
)

_LIVE: dict[int, subprocess.Popen[bytes]] = {}
_CLUSTERS: list[PrivatePostgres] = []


def _cleanup_at_exit() -> None:
    for popen in list(_LIVE.values()):
        end_process(popen, grace=3.0)
    for cluster in list(_CLUSTERS):
        cluster.destroy()


atexit.register(_cleanup_at_exit)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def end_process(popen: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """End one process of ours by its pid: SIGTERM, then SIGKILL after `grace` seconds."""
    _LIVE.pop(popen.pid, None)
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            popen.kill()
        popen.wait(timeout=5)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bindir() -> Path:
    configured = os.environ.get("B24MAIL_CHAOS_PG_BIN")
    if configured:
        return Path(configured)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError(
        "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and PATH); "
        "set B24MAIL_CHAOS_PG_BIN to the directory holding initdb and pg_ctl"
    )


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free loopback port, restartable at will.

    PostgreSQL refuses to run as root: as root every command runs through `runuser -u postgres`
    and the directory belongs to postgres.
    """

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="b24mail-chaos-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = 0
        self._as_postgres = os.geteuid() == 0
        _CLUSTERS.append(self)

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} {args[1] if len(args) > 1 else ''} failed ({done.returncode}): "
                f"{done.stderr.decode(errors='replace')[-800:]}{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            tail = self.log.read_text(errors="replace").splitlines()[-10:]
        except OSError:
            return ""
        return "\npostgres log:\n" + "\n".join(tail)

    def init_and_start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, user="postgres", group="postgres")
        self.root.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        for attempt in range(5):  # a port found free can be taken before postgres binds it
            self.port = free_port()
            try:
                self.start()
                return
            except RuntimeError:
                if attempt == 4:
                    raise

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={HOST} "
            "-c fsync=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30",
            "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop the cluster (if it runs) and remove its directory; safe to call twice."""
        if self in _CLUSTERS:
            _CLUSTERS.remove(self)
        if self.data.exists() and self.running():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired, OSError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


# --------------------------------------------------------------------------- b24mail processes


@dataclass
class AppProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    log_offset: int = 0  # where this scenario's part of the log starts

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        _LIVE.pop(self.popen.pid, None)
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def end(self, grace: float = 15.0) -> None:
        end_process(self.popen, grace=grace)

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time so far (0 once the process is gone)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_app(name: str, command: str, env: Mapping[str, str], logdir: Path) -> AppProcess:
    """`python -m bot <command>` with `env`; output to logdir/<name>.log."""
    log = logdir / f"{name}.log"
    full_env = {k: v for k, v in os.environ.items() if k not in _INHERITED_UNSET}
    full_env.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT), **env})
    with log.open("ab") as out:
        # cwd is the log directory so no stray .env file of the checkout is read.
        popen = subprocess.Popen(
            [sys.executable, "-m", "bot", command],
            cwd=logdir,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    _LIVE[popen.pid] = popen
    return AppProcess(name, popen, log)


def wait_for_log(process: AppProcess, needle: str, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in process.text():
            return
        if not process.alive():
            break
        time.sleep(0.05)
    raise RuntimeError(f"{process.name} did not log {needle!r} in {timeout}s:\n{process.tail()}")


def wait_ready(process: AppProcess, url: str, *, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            break
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} was not ready at {url} in {timeout}s:\n{process.tail()}")


# --------------------------------------------------------------------------- Slack requests


def signed(body: str) -> tuple[bytes, dict[str, str]]:
    raw = body.encode()
    return raw, sign(raw, signing_secret=SIGNING_SECRET)


def connect_body(webhook_url: str, *, user_id: str) -> str:
    payload = view_submission(
        callback_id=ids.CONNECT_VIEW,
        values={ids.CONNECT_URL_BLOCK: {ids.CONNECT_URL_ACTION: text_input(webhook_url)}},
        user_id=user_id,
    )
    return interactive_body(payload)


def compose_body(
    *,
    user_id: str,
    sender: str,
    subject: str,
    channel: str,
    view_id: str,
    view_hash: str,
) -> str:
    """A valid compose submission, as Slack posts it when the user presses Send."""
    values: dict[str, Any] = {
        ids.FROM_BLOCK: {ids.FROM_ACTION: static_select(sender)},
        ids.TO_BLOCK: {ids.ADDRESSES_ACTION: text_input("Bob <bob@client.example>")},
        ids.CC_BLOCK: {ids.ADDRESSES_ACTION: text_input("carol@client.example")},
        ids.BCC_BLOCK: {ids.ADDRESSES_ACTION: text_input(None)},
        ids.SUBJECT_BLOCK: {ids.SUBJECT_ACTION: text_input(subject)},
        ids.BODY_BLOCK: {ids.BODY_ACTION: rich_text_input(f"Hello Bob,\n{subject}")},
        ids.POST_TO_BLOCK: {
            ids.POST_TO_ACTION: {"type": "conversations_select", "selected_conversation": channel}
        },
    }
    payload = view_submission(
        callback_id=ids.COMPOSE_VIEW,
        values=values,
        private_metadata=json.dumps({"channel_id": channel}),
        view_id=view_id,
        view_hash=view_hash,
        user_id=user_id,
    )
    return interactive_body(payload)
