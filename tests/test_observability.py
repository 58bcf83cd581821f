"""Observability: /metrics through the real app moves with the work done; /healthz is liveness
and /readyz readiness; every log line carries its correlation id and never a secret, as text
or as JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.logs import (
    CorrelationFilter,
    JsonFormatter,
    TextFormatter,
    correlation,
    current_correlation_id,
    new_correlation_id,
)
from bot.services import build_services
from bot.settings import Settings
from bot.slack import ids
from bot.store.outbox import OutboxStatus
from bot.web import create_web_app, describe
from bot.worker import Worker
from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import block_actions, interactive_body, sign, slash_command_body
from tests.security.support import ALICE, compose_payload, connect_payload, link
from tests.security.test_log_redaction import _spellings
from tests.support.app import SIGNING_SECRET, RunningApp, make_settings, running_app
from tests.support.processes import Processes

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(exposition: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(app: RunningApp) -> Samples:
    response = await app.http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def until_sent_and_shown(app: RunningApp, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = await app.services.outbox.history(ALICE)
        if rows and all(
            r.status == OutboxStatus.SENT and r.notified_version == r.state_version for r in rows
        ):
            return
        assert time.monotonic() < deadline, [(r.status, r.notified_version) for r in rows]
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- /metrics


async def test_metrics_move_with_requests_queue_and_deliveries(
    engine: AsyncEngine, portal: FakePortal, slack: FakeSlack
) -> None:
    """A connect and a compose submission count as acks; the e-mail shows in the queue gauges
    (read from the database) until a worker sends it; then the send, its Bitrix24 call and
    its status message are counted and the queue is empty."""
    async with running_app(engine=engine, slack=slack) as app:
        before = await scrape(app)
        assert value(before, "b24mail_database_up") == 1
        b24 = portal.add_user(5, senders=[("Alice Smith", "alice@corp.example")])
        assert (await app.interactive(connect_payload(b24.webhook_url))).status_code == 200
        submitted = await app.interactive(compose_payload())
        assert submitted.status_code == 200 and submitted.text == ""
        forged = await app.http.post(
            "/slack/events", content=b"command=/b24mail", headers={"X-Slack-Signature": "v0=x"}
        )
        assert forged.status_code == 401
        await asyncio.sleep(0.05)

        queued = await scrape(app)
        assert value(queued, "b24mail_queue_depth", status="queued") == 1
        assert value(queued, "b24mail_queue_depth", status="sending") == 0
        assert value(queued, "b24mail_queue_oldest_age_seconds") > 0
        for kind, status, delta in (("view_submission", "200", 2), ("unverified", "401", 1)):
            name = "b24mail_slack_requests_total"
            moved = value(queued, name, kind=kind, status=status) - value(
                before, name, kind=kind, status=status
            )
            assert moved == delta, (kind, moved)
        acks = value(queued, "b24mail_slack_ack_seconds_count", kind="view_submission")
        assert acks - value(before, "b24mail_slack_ack_seconds_count", kind="view_submission") == 2

        worker = Worker(app.services)
        await worker.start()
        try:
            await until_sent_and_shown(app)
        finally:
            await worker.stop()

        after = await scrape(app)
        for name, labels in (
            ("b24mail_sends_total", {"outcome": "sent"}),
            ("b24mail_bitrix24_request_seconds_count", {"method": "send"}),
            ("b24mail_status_messages_total", {"outcome": "ok"}),
        ):
            moved = value(after, name, **labels) - value(before, name, **labels)
            assert moved >= 1 if name == "b24mail_status_messages_total" else moved == 1, name
        assert value(after, "b24mail_queue_depth", status="queued") == 0
        assert value(after, "b24mail_queue_oldest_age_seconds") == 0


async def test_metrics_token_guards_the_endpoint(engine: AsyncEngine, slack: FakeSlack) -> None:
    async with running_app(
        engine=engine, slack=slack, b24mail_metrics_token="scrape-token-0123"
    ) as app:
        assert (await app.http.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await app.http.get("/metrics", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer scrape-token-0123"}
        scraped = await app.http.get("/metrics", headers=right)
        assert scraped.status_code == 200 and "b24mail_queue_depth" in scraped.text


async def test_healthz_is_liveness_only_readyz_and_metrics_see_the_database_down(
    slack: FakeSlack,
) -> None:
    """A database outage must not fail liveness (the platform would restart every process at
    once); /readyz says 503 and /metrics reports database_up 0 without the queue gauges."""
    settings = make_settings(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere", slack=slack
    )
    services = build_services(settings)
    web = create_web_app(services, create_app(services))
    transport = httpx.ASGITransport(app=web)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            assert (await http.get("/readyz")).status_code == 503
            samples = parse((await http.get("/metrics")).text)
            assert value(samples, "b24mail_database_up") == 0
            assert not any(name == "b24mail_queue_depth" for name, _ in samples)
    finally:
        await services.aclose()


def test_a_worker_whose_metrics_port_is_taken_stops_with_a_clear_message(
    tmp_path: Path, slack: FakeSlack
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": "metrics-port-secret",
            "SLACK_API_URL": slack.api_url,
            "DATABASE_URL": f"sqlite:///{tmp_path}/b.db",
            "HOST": "127.0.0.1",
            "B24MAIL_METRICS_PORT": str(taken.getsockname()[1]),
        }
        with Processes(tmp_path, env) as processes:
            assert processes.run("migrate").returncode == 0  # else it refuses for that
            done = processes.run("worker", timeout=30)
    assert done.returncode == 2, done.stderr
    assert "B24MAIL_METRICS_PORT: cannot listen" in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- logs


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the test, stamped with its correlation id as our handler does."""
    stamp = CorrelationFilter()
    caplog.handler.addFilter(stamp)
    caplog.set_level(logging.DEBUG)
    yield caplog
    caplog.handler.removeFilter(stamp)


def request_lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "bot.web" and r.getMessage() == "slack request"]


async def test_each_slack_request_logs_one_line_under_its_own_correlation_id(
    engine: AsyncEngine, portal: FakePortal, slack: FakeSlack, logs: pytest.LogCaptureFixture
) -> None:
    """kind, callback, status and duration; everything logged while handling a request carries
    that request's id, and no two requests share one."""
    async with running_app(engine=engine, slack=slack) as app:
        await link(app, portal)
        logs.clear()
        body = slash_command_body(text="help", response_url=slack.response_url("command"))
        assert (await app.post_signed(body)).status_code == 200
        assert (await app.interactive(compose_payload())).status_code == 200
        await app.http.post("/slack/events", content=b"x", headers={"X-Slack-Signature": "v0=x"})
        await app.services.background.drain(timeout=5)

    records = logs.records
    lines = request_lines(records)
    described = [
        (r.fields["kind"], r.fields["callback"], r.fields["status"])  # type: ignore[attr-defined]
        for r in lines
    ]
    assert described == [
        ("command", "/b24mail", 200),
        ("view_submission", ids.COMPOSE_VIEW, 200),
        ("unverified", "", 401),
    ]
    cids = [r.correlation_id for r in lines]  # type: ignore[attr-defined]
    assert all(cids) and len(set(cids)) == 3
    for line in lines:
        assert isinstance(line.fields["duration_ms"], float)  # type: ignore[attr-defined]
    refused = [r for r in records if "refused a Slack request" in r.getMessage()]
    assert [r.correlation_id for r in refused] == [cids[2]]  # type: ignore[attr-defined]
    # Nothing logged by our code during a request is without its id.
    ours = [r for r in records if r.name.startswith("bot.") and r.name != "bot.mail.delivery"]
    assert all(r.correlation_id in cids for r in ours), [  # type: ignore[attr-defined]
        (r.name, r.getMessage())
        for r in ours
        if r.correlation_id not in cids  # type: ignore[attr-defined]
    ]


async def test_a_delivery_attempt_is_one_line_under_the_email_id(
    engine: AsyncEngine, portal: FakePortal, slack: FakeSlack, logs: pytest.LogCaptureFixture
) -> None:
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        await link(app, portal)
        assert (await app.interactive(compose_payload())).status_code == 200
        await until_sent_and_shown(app)
        (row,) = await app.services.outbox.history(ALICE)

    records = logs.records
    (attempt,) = [r for r in records if getattr(r, "fields", {}).get("event") == "delivery_attempt"]
    assert attempt.correlation_id == row.id  # type: ignore[attr-defined]
    fields = attempt.fields  # type: ignore[attr-defined]
    assert (fields["email"], fields["outcome"], fields["attempt"]) == (row.id, "sent", 1)
    assert isinstance(fields["duration_ms"], int)
    entry = json.loads(JsonFormatter().format(attempt))
    assert (entry["correlation_id"], entry["outcome"], entry["attempt"]) == (row.id, "sent", 1)
    text = TextFormatter().format(attempt)
    assert f"[{row.id}]" in text and "outcome=sent" in text and text.count("attempt=") == 1


async def test_no_formatted_line_holds_the_webhook_code_in_text_or_json(
    engine: AsyncEngine, portal: FakePortal, slack: FakeSlack, logs: pytest.LogCaptureFixture
) -> None:
    """Connect (failing, then working), a forged request carrying the webhook, and a send,
    formatted by both formatters: the code is in no line."""
    async with running_app(engine=engine, slack=slack, worker=True) as app:
        b24 = portal.add_user(6, senders=[("Alice Smith", "alice@corp.example")])
        code = b24.webhook_url.rstrip("/").rsplit("/", 1)[1]
        portal.fail_next(1, status=401, error="INVALID_CREDENTIALS")
        await app.interactive(connect_payload(b24.webhook_url))
        await app.interactive(connect_payload(b24.webhook_url))
        forged = interactive_body(connect_payload(b24.webhook_url))
        await app.http.post(
            "/slack/events", content=forged.encode(), headers={"X-Slack-Signature": "v0=0"}
        )
        await app.interactive(compose_payload())
        await until_sent_and_shown(app)
    records = logs.records
    assert len(code) >= 8 and records
    for formatter in (TextFormatter(), JsonFormatter()):
        for record in records:
            assert code not in formatter.format(record), record.getMessage()


@pytest.mark.parametrize("spelling_index", range(7))
def test_json_lines_mask_every_spelling_of_a_webhook_and_stay_json(spelling_index: int) -> None:
    """JSON doubles the backslash of an escaped slash: values are masked before escaping."""
    code = "kSecretCode12345"
    url = f"https://portal.example.com/rest/42/{code}/mail.message.send"
    spelling = _spellings(url)[spelling_index]
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "body: %s", (spelling,), None)
    record.fields = {"detail": spelling, "count": 3}
    try:
        raise ValueError(f"while posting {spelling}")
    except ValueError:
        record.exc_info = sys.exc_info()
    with correlation("c0ffee"):
        CorrelationFilter().filter(record)
    line = JsonFormatter().format(record)
    assert code not in line
    entry = json.loads(line)
    assert entry["correlation_id"] == "c0ffee" and entry["count"] == 3
    assert "42" in entry["message"] and "ValueError" in entry["exception"]


def test_text_lines_show_the_correlation_id_and_only_fields_not_in_the_message() -> None:
    record = logging.LogRecord("bot.x", logging.INFO, __file__, 1, "sent email=%s", ("e1",), None)
    record.fields = {"event": "delivery_attempt", "email": "e1", "outcome": "sent"}
    record.correlation_id = "e1"
    line = TextFormatter().format(record)
    assert line.endswith("INFO bot.x [e1] sent email=e1 outcome=sent")


def test_log_format_setting() -> None:
    assert Settings(_env_file=None, log_format="JSON").log_format == "json"  # type: ignore[call-arg]
    assert Settings(_env_file=None).log_format == "text"  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, log_format="xml")  # type: ignore[call-arg]


def test_describe_names_the_request_never_user_text() -> None:
    assert describe({"command": "/b24mail", "text": "connect https://x/rest/1/abc/"}) == (
        "command",
        "/b24mail",
    )
    action = block_actions(action_id="b24mail_retry", value="x")
    assert describe(action) == ("block_actions", "b24mail_retry")
    assert describe({"type": "view_submission", "view": "not a dict"}) == ("view_submission", "")
    assert describe({"type": "shortcut", "callback_id": "has spaces and\nnewlines"}) == (
        "shortcut",
        "",
    )
    assert describe({"type": "something_new"}) == ("other", "")


def test_correlation_ids_are_twelve_hex_digits_and_differ() -> None:
    ids_ = {new_correlation_id() for _ in range(1000)}
    assert len(ids_) == 1000
    assert all(len(i) == 12 and int(i, 16) >= 0 and i == i.lower() for i in ids_)


def test_correlation_blocks_nest_and_restore() -> None:
    with correlation("outer") as outer:
        with correlation("inner"):
            assert current_correlation_id() == "inner"
        assert (outer, current_correlation_id()) == ("outer", "outer")
    assert current_correlation_id() is None


def test_text_lines_carry_the_second_they_were_logged_in() -> None:
    """The time is formatted once a second and cached: each line still gets its own second."""
    formatter = TextFormatter()
    for created in (1_000_000_000.2, 1_000_000_000.9, 1_000_000_001.0, 999_999_999.5):
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", (), None)
        record.created = created
        expected = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(created))
        assert formatter.format(record).startswith(f"{expected} INFO t m")


async def test_a_request_that_fails_past_bolt_still_gets_its_line(
    engine: AsyncEngine, slack: FakeSlack, logs: pytest.LogCaptureFixture
) -> None:
    """No response to write it after: the 500's line is written at once, with its id."""

    class Exploding:
        async def async_dispatch(self, _request: object) -> object:
            raise RuntimeError("boom")

    async with running_app(engine=engine, slack=slack) as app:
        web = create_web_app(app.services, Exploding(), close_services=False)  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=web, raise_app_exceptions=False)
        body = slash_command_body(text="help", response_url=slack.response_url("command"))
        headers = sign(body, signing_secret=SIGNING_SECRET)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            logs.clear()
            answer = await client.post("/slack/events", content=body.encode(), headers=headers)
    assert answer.status_code == 500
    (line,) = request_lines(logs.records)
    assert (line.fields["kind"], line.fields["status"]) == ("error", 500)  # type: ignore[attr-defined]
    assert line.correlation_id  # type: ignore[attr-defined]
