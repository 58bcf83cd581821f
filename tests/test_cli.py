"""The b24mail command as an operator uses it: real processes, real files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.fakes.slack_api import FakeSlack

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def clean_env(**values: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    keep["PYTHONPATH"] = str(ROOT)
    keep.update(values)
    return keep


def test_serve_without_slack_credentials_says_what_to_set(tmp_path: Path) -> None:
    """Exit code 2, the variables and where to find them, and no traceback."""
    result = run_cli("serve", env=clean_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr and "SLACK_SIGNING_SECRET" in result.stderr
    assert "Basic Information" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_invalid_setting_is_named_without_echoing_it(tmp_path: Path) -> None:
    result = run_cli("check", env=clean_env(PORT="not-a-port-secretish"), cwd=tmp_path)
    assert result.returncode == 2
    assert "PORT" in result.stderr and "not-a-port-secretish" not in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_check_and_rotate_keys(tmp_path: Path) -> None:
    """migrate creates the database; check reports it without secrets; rotate-keys runs."""
    key = Fernet.generate_key().decode()
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/b.db",
        B24MAIL_SECRET_KEYS=key,
        SLACK_BOT_TOKEN="xoxb-cli-secret-token",
        SLACK_SIGNING_SECRET="cli-signing-secret",
    )
    migrated = run_cli("migrate", env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "b.db").exists()
    checked = run_cli("check", env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "migrations current" in checked.stdout
    assert "HTTP on port 3000" in checked.stdout
    for secret in (key, "xoxb-cli-secret-token", "cli-signing-secret"):
        assert secret not in checked.stdout + checked.stderr
    rotated = run_cli("rotate-keys", env=env, cwd=tmp_path)
    assert rotated.returncode == 0 and "Re-encrypted 0" in rotated.stdout


def test_serve_runs_on_the_embedded_default(tmp_path: Path, slack_server: FakeSlack) -> None:
    """`b24mail serve` with only Slack credentials: SQLite file, key file and migrations made,
    /healthz and /readyz answer, SIGTERM stops it cleanly."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = clean_env(
        SLACK_BOT_TOKEN="xoxb-test-token",
        SLACK_SIGNING_SECRET="serve-secret",
        SLACK_API_URL=slack_server.api_url,
        PORT=str(port),
        HOST="127.0.0.1",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert ready is not None and ready.status_code == 200, ready
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
        assert (tmp_path / "b24mail.db").exists()
        assert (tmp_path / "b24mail.key").stat().st_mode & 0o777 == 0o600
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    # A clean drain is a success (uvicorn's own server would re-raise SIGTERM: 143).
    assert process.returncode == 0, output
    assert "Application shutdown complete" in output
    assert "delivery worker" in output and "stopped" in output
    assert "Generated a new encryption key" in output
    assert "Traceback" not in output


SLACK_VARIABLES = ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET")


@pytest.mark.parametrize("command", ["serve", "web", "check"])
@pytest.mark.parametrize("empty", [SLACK_VARIABLES, SLACK_VARIABLES[:1], SLACK_VARIABLES[1:]])
def test_an_empty_slack_variable_is_as_missing_as_an_unset_one(
    tmp_path: Path, command: str, empty: tuple[str, ...]
) -> None:
    """`SLACK_BOT_TOKEN=` gets the very message (and exit code) of no SLACK_BOT_TOKEN at all:
    before, check said "set", serve died in Bolt and web answered 401 to everything."""
    given = {"SLACK_BOT_TOKEN": "xoxb-empty-test", "SLACK_SIGNING_SECRET": "empty-test"}
    base = {
        "DATABASE_URL": "postgresql://u@127.0.0.1:1/never",  # web refuses SQLite before Slack
        "B24MAIL_SECRET_KEYS": Fernet.generate_key().decode(),
    }
    with_empty = {**base, **given, **dict.fromkeys(empty, "")}
    without = {**base, **{k: v for k, v in given.items() if k not in empty}}
    blank = run_cli(command, env=clean_env(**with_empty), cwd=tmp_path)
    missing = run_cli(command, env=clean_env(**without), cwd=tmp_path)
    expected_code = 1 if command == "check" else 2
    assert blank.returncode == missing.returncode == expected_code, blank.stderr
    for name in empty:
        assert f"  - {name} (" in blank.stdout + blank.stderr
    assert blank.stderr == missing.stderr
    assert blank.stdout == missing.stdout
    assert "slack credentials: set" not in blank.stdout
    assert "Traceback" not in blank.stdout + blank.stderr
