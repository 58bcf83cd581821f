"""The real app, served by uvicorn on loopback, driven with signed Slack requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import uvicorn
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.mail.delivery import DeliveryConfig
from bot.services import Services, build_services
from bot.settings import Settings
from bot.web import create_web_app
from bot.worker import Worker
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import interactive_body, sign, slash_command_body

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"


def make_settings(*, database_url: str, slack: FakeSlack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": slack.token if hasattr(slack, "token") else "xoxb-test-token",
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.api_url,
        "database_url": database_url,
        "b24mail_secret_keys": Fernet.generate_key().decode(),
        "b24mail_allow_insecure_portals": True,
        "log_level": "DEBUG",
        # The client's rate limiter is shared per portal in a process; the fake portal is fast.
        "bitrix24_rate": 1000.0,
        "bitrix24_burst": 1000,
        # The fake portal ends every request within a second (Bitrix24: 60 s).
        "bitrix24_request_limit": 1.0,
        # No undo window unless a test is about it: e-mails leave at once.
        "b24mail_undo_seconds": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class RunningApp:
    def __init__(self, *, settings: Settings, services: Services, base_url: str, slack: FakeSlack):
        self.settings = settings
        self.services = services
        self.base_url = base_url
        self.slack = slack
        self.http = httpx.AsyncClient(base_url=base_url, timeout=10)
        self.worker: Worker | None = None

    async def post_signed(
        self, body: str, *, content_type: str = "application/x-www-form-urlencoded", **sign_kw: Any
    ) -> httpx.Response:
        headers = sign(body, signing_secret=SIGNING_SECRET, **sign_kw)
        headers["Content-Type"] = content_type
        return await self.http.post("/slack/events", content=body.encode(), headers=headers)

    async def command(
        self,
        text: str = "",
        *,
        user_id: str = "U0001",
        team_id: str = "T0001",
        channel_id: str = "C0001",
        enterprise_id: str | None = None,
        trigger_id: str | None = None,
    ) -> httpx.Response:
        body = slash_command_body(
            text=text,
            user_id=user_id,
            team_id=team_id,
            channel_id=channel_id,
            enterprise_id=enterprise_id,
            response_url=self.slack.response_url("command"),
            trigger_id=trigger_id,
        )
        return await self.post_signed(body)

    async def interactive(self, payload: dict[str, Any]) -> httpx.Response:
        return await self.post_signed(interactive_body(payload))

    @staticmethod
    def json(response: httpx.Response) -> dict[str, Any]:
        """The ack's body: Bolt answers a text-only ack as text/plain, anything else as JSON."""
        assert response.status_code == 200, response.text
        if not response.text:
            return {}
        if response.headers.get("content-type", "").startswith("application/json"):
            return dict(json.loads(response.text))
        return {"text": response.text}


FAST_DELIVERY = DeliveryConfig(
    lease=timedelta(seconds=5),
    backoff_base=0.05,
    backoff_max=0.2,
    overload_backoff=0.2,
    idle_poll=0.2,
)


@asynccontextmanager
async def running_app(
    *,
    engine: AsyncEngine,
    slack: FakeSlack,
    worker: bool = False,
    delivery_config: DeliveryConfig = FAST_DELIVERY,
    **overrides: Any,
) -> AsyncIterator[RunningApp]:
    """The app on a free loopback port; with worker=True the delivery and status loops run too."""
    database_url = engine.url.render_as_string(hide_password=False)
    settings = make_settings(database_url=database_url, slack=slack, **overrides)
    services = build_services(settings, engine=engine, delivery_config=delivery_config)
    bolt_app = create_app(services)
    background = Worker(services) if worker else None
    web = create_web_app(
        services,
        bolt_app,
        on_startup=background.start if background else None,
        on_shutdown=background.stop if background else None,
        close_services=False,
    )
    config = uvicorn.Config(web, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    running = RunningApp(
        settings=settings, services=services, base_url=f"http://127.0.0.1:{port}", slack=slack
    )
    running.worker = background
    try:
        yield running
    finally:
        await running.http.aclose()
        server.should_exit = True
        await task
        await services.background.drain(timeout=5)
        await services.bitrix24.aclose()
