"""The b24mail command as an operator uses it: real processes, real files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from bot.cli import _HELP, main
from bot.store.migrations import head_revision, pending_revisions
from tests.fakes.slack_api import FakeSlack
from tests.support.databases import create_pg_database, drop_pg_database, postgres_required
from tests.support.processes import plain_pg_url

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
        B24MAIL_METRICS_TOKEN="cli-metrics-token",
    )
    migrated = run_cli("migrate", env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "b.db").exists()
    checked = run_cli("check", env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "migrations current" in checked.stdout
    assert "HTTP on port 3000" in checked.stdout
    assert "metrics: /metrics requires the bearer token B24MAIL_METRICS_TOKEN" in checked.stdout
    for secret in (key, "xoxb-cli-secret-token", "cli-signing-secret", "cli-metrics-token"):
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
    assert f"applied {len(pending_revisions(None))} migration(s)" in output
    assert "alembic" not in output
    assert "will be unused" not in output  # Bolt's warning when given a token twice
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


@pytest.mark.parametrize("command", sorted(_HELP))
def test_every_command_explains_itself_in_its_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    shown = " ".join(capsys.readouterr().out.split())
    summary, details = _HELP[command]
    assert shown.startswith(f"usage: b24mail {command} [-h] {summary[0].upper()}{summary[1:]}.")
    assert " ".join(details.split()) in shown
    assert "environment or a .env file" in shown


@pytest.fixture(params=["sqlite", "postgres"])
def unmigrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a deployment whose database has no table yet."""
    if request.param == "sqlite":
        yield clean_env(SLACK_BOT_TOKEN="xoxb-cli", SLACK_SIGNING_SECRET="cli-secret")
        return
    if not postgres_required():
        pytest.skip("B24MAIL_SKIP_POSTGRES=1")
    name, _url = create_pg_database("b24mail_cli")
    yield clean_env(
        SLACK_BOT_TOKEN="xoxb-cli",
        SLACK_SIGNING_SECRET="cli-secret",
        DATABASE_URL=plain_pg_url(name),
        B24MAIL_SECRET_KEYS=Fernet.generate_key().decode(),
    )
    drop_pg_database(name)


def test_check_changes_nothing_and_says_to_migrate_then_migrate_says_what_it_did(
    tmp_path: Path, unmigrated: dict[str, str]
) -> None:
    """Before migrations `check` fails (1) and names `b24mail migrate`, creating no file (not
    the SQLite database, not the key); `migrate` lists what it applied, then that nothing was
    pending; no Alembic log lines on the way."""
    pending = pending_revisions(None)
    before = run_cli("check", env=unmigrated, cwd=tmp_path)
    assert before.returncode == 1, before.stdout + before.stderr
    assert "run `b24mail migrate`" in before.stdout
    assert "metrics: /metrics answers anyone who reaches 0.0.0.0:3000" in before.stdout
    assert list(tmp_path.iterdir()) == []

    first = run_cli("migrate", env=unmigrated, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"Applied {len(pending)} migration(s): {pending[0][0]} ({pending[0][1]})" in first.stdout
    assert f"now at the latest migration ({head_revision()})" in first.stdout
    again = run_cli("migrate", env=unmigrated, cwd=tmp_path)
    assert again.returncode == 0
    assert (
        again.stdout
        == f"Nothing to apply: the database is at the latest migration ({head_revision()}).\n"
    )

    files = sorted(path.name for path in tmp_path.iterdir())
    after = run_cli("check", env=unmigrated, cwd=tmp_path)
    assert after.returncode == 0, after.stdout
    assert f"migrations current ({head_revision()})" in after.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == files
    for result in (before, first, again, after):
        assert "alembic" not in result.stderr and "INFO" not in result.stderr


def test_worker_refuses_to_start_before_migrations(
    tmp_path: Path, unmigrated: dict[str, str]
) -> None:
    """Before: it ran, and its loops logged `no such table: outbox` with the SQL every second."""
    result = run_cli("worker", env=unmigrated, cwd=tmp_path, timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "b24mail worker cannot start: migrations pending: run `b24mail migrate`" in result.stderr
    assert pending_revisions(None)[0][0] in result.stderr
    assert "Traceback" not in result.stderr and "no such table" not in result.stderr
