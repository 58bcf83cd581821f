"""`b24mail web`: the HTTP app alone, in WEB_CONCURRENCY uvicorn processes over one port, whose
metrics are summed whichever process answers the scrape."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.support.databases import create_pg_database, drop_pg_database, postgres_required
from tests.support.processes import HOST, Processes, free_port, plain_pg_url

UNVERIFIED = re.compile(
    r'^b24mail_slack_requests_total\{kind="unverified",status="401"\} (\S+)$', re.M
)


def test_web_refuses_sqlite_and_socket_mode(tmp_path: Path) -> None:
    """Several processes beside `b24mail worker` need PostgreSQL; Socket Mode has no HTTP."""
    base = {"SLACK_BOT_TOKEN": "xoxb-web-test", "SLACK_SIGNING_SECRET": "web-secret"}
    with Processes(tmp_path, {**base, "DATABASE_URL": f"sqlite:///{tmp_path}/b.db"}) as processes:
        done = processes.run("web")
    assert done.returncode == 2 and "PostgreSQL" in done.stderr and "b24mail serve" in done.stderr
    socket_env = {**base, "SLACK_APP_TOKEN": "xapp-1-web-test"}
    with Processes(tmp_path, socket_env) as processes:
        done = processes.run("web")
    assert done.returncode == 2 and "Socket Mode" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def pg_database() -> Iterator[str]:
    if not postgres_required():
        pytest.skip("B24MAIL_SKIP_POSTGRES=1")
    name, _url = create_pg_database("b24mail_web")
    yield name
    drop_pg_database(name)


@pytest.mark.slow
@pytest.mark.postgres
async def test_two_web_processes_report_the_sum_of_their_metrics(
    tmp_path: Path, pg_database: str
) -> None:
    """Requests land on both processes; every scrape, whichever process answers it, counts all
    of them. JSON logs carry a correlation id per request. SIGTERM stops both, exit 0, and the
    private metrics directory is removed."""
    port = free_port()
    env = {
        "SLACK_BOT_TOKEN": "xoxb-web-test",
        "SLACK_SIGNING_SECRET": "web-secret",
        "DATABASE_URL": plain_pg_url(pg_database),
        "B24MAIL_SECRET_KEYS": Fernet.generate_key().decode(),
        "HOST": HOST,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "LOG_FORMAT": "json",
        "TMPDIR": str(tmp_path),  # where `web` makes its private metrics directory
    }
    with Processes(tmp_path, env) as processes:
        assert processes.run("migrate").returncode == 0
        web = processes.start("web", "web")
        await web.await_http(f"http://{HOST}:{port}/readyz", timeout=60)
        (directory,) = tmp_path.glob("b24mail-metrics-*")

        sent = 0
        async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=10) as http:

            async def forged() -> None:
                # A new connection each: uvicorn's processes accept from one shared socket.
                async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}") as own:
                    response = await own.post("/slack/events", content=b"x")
                    assert response.status_code == 401

            deadline = time.monotonic() + 20
            while len({p.name for p in directory.glob("counter_*.db")}) < 2:
                assert time.monotonic() < deadline, "one process took every request"
                await asyncio.gather(*(forged() for _ in range(10)))
                sent += 10
            for _ in range(6):
                scraped = (await http.get("/metrics")).text
                match = UNVERIFIED.search(scraped)
                assert match is not None and float(match.group(1)) == sent

        code, _took = await asyncio.to_thread(web.terminate, timeout=30)
        assert code == 0, web.tail()
        assert not directory.exists()
        lines = [json.loads(line) for line in web.text().splitlines() if line.startswith("{")]
        requests = [entry for entry in lines if entry.get("event") == "slack_request"]
        assert len(requests) == sent
        assert len({entry["correlation_id"] for entry in requests}) == sent
        assert {(entry["kind"], entry["status"]) for entry in requests} == {("unverified", 401)}
        assert "Traceback" not in web.text()


@pytest.mark.slow
@pytest.mark.postgres
async def test_one_web_process_exits_0_on_sigterm(tmp_path: Path, pg_database: str) -> None:
    """WEB_CONCURRENCY=1 serves without uvicorn's supervisor; SIGTERM still ends it with 0."""
    port = free_port()
    env = {
        "SLACK_BOT_TOKEN": "xoxb-web-test",
        "SLACK_SIGNING_SECRET": "web-secret",
        "DATABASE_URL": plain_pg_url(pg_database),
        "B24MAIL_SECRET_KEYS": Fernet.generate_key().decode(),
        "HOST": HOST,
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
    }
    with Processes(tmp_path, env) as processes:
        assert processes.run("migrate").returncode == 0
        web = processes.start("web", "web")
        await web.await_http(f"http://{HOST}:{port}/readyz", timeout=60)
        code, _took = await asyncio.to_thread(web.terminate, timeout=30)
    assert code == 0, web.tail()
    assert "Application shutdown complete" in web.text()
    assert "Traceback" not in web.text()
