"""What the CLI commands do, as async functions over Settings (testable without a shell)."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.settings import ConfigurationError, Settings
from bot.store.crypto import SecretBox
from bot.store.db import create_engine, create_session_factory
from bot.store.links import LinkRepository
from bot.store.migrations import current_revision, head_revision, upgrade

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncApp

    from bot.services import Services
    from bot.worker import Worker

log = logging.getLogger("bot.runtime")


async def migrate(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def serve(settings: Settings) -> None:
    """Apply migrations, then run web (HTTP or Socket Mode) and the worker in this process."""
    import uvicorn

    from bot.app import create_app
    from bot.services import build_services
    from bot.web import create_web_app
    from bot.worker import Worker

    engine = create_engine(settings.database_url)
    await upgrade(engine)
    services = build_services(settings, engine=engine)
    bolt_app = create_app(services)
    worker = Worker(services) if settings.b24mail_run_worker else None
    if settings.socket_mode:
        await _serve_socket_mode(settings, services, bolt_app, worker)
        return
    web = create_web_app(
        services,
        bolt_app,
        on_startup=worker.start if worker else None,
        on_shutdown=worker.stop if worker else None,
    )
    config = uvicorn.Config(web, host=settings.host, port=settings.port, **uvicorn_options())
    log.info("serving HTTP on %s:%s (POST /slack/events)", settings.host, settings.port)
    await uvicorn.Server(config).serve()


def uvicorn_options() -> dict[str, Any]:
    """How `serve` runs uvicorn (also used by the benchmarks' bare Bolt app, to compare alike)."""
    return {"log_config": None, "lifespan": "on", "access_log": False}


async def _serve_socket_mode(
    settings: Settings, services: Services, bolt_app: AsyncApp, worker: Worker | None
) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(bolt_app, settings.slack_app_token.get_secret_value())
    stop = _stop_on_signals()
    await handler.connect_async()  # type: ignore[no-untyped-call]
    if worker:
        await worker.start()
    log.info("connected to Slack in Socket Mode")
    try:
        await stop.wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
        if worker:
            await worker.stop()
        await services.aclose()


async def work(settings: Settings) -> None:
    """`b24mail worker`: delivery and status messages only, until SIGTERM/SIGINT."""
    from bot.services import build_services
    from bot.worker import Worker

    engine = create_engine(settings.database_url)
    services = build_services(settings, engine=engine)
    worker = Worker(services)
    stop = _stop_on_signals()
    await worker.start()
    log.info("worker running")
    try:
        await stop.wait()
    finally:
        log.info("worker stopping: finishing e-mails in flight")
        await worker.stop()
        await services.aclose()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def check(settings: Settings) -> tuple[list[str], bool]:
    """A report of the configuration that names no secret; ok is False when something is wrong."""
    ok = True
    url = make_url(settings.database_url)
    lines = [
        f"mode: {'Socket Mode' if settings.socket_mode else f'HTTP on port {settings.port}'}",
        f"database: {url.render_as_string(hide_password=True)}",
    ]
    problem = settings.slack_credentials_problem()
    lines.append("slack credentials: " + ("missing (see below)" if problem else "set"))
    if problem:
        ok = False
    try:
        keys = settings.secret_keys()
        lines.append(f"encryption keys: {len(keys)} configured")
    except ConfigurationError as exc:
        lines.append(f"encryption keys: {exc}")
        ok = False
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        current = await current_revision(engine)
        head = head_revision()
        state = "current" if current == head else f"at {current or 'nothing'}, latest is {head}"
        lines.append(f"database connection: ok; migrations {state}")
    except (SQLAlchemyError, OSError) as exc:
        lines.append(f"database connection: failed ({type(exc).__name__})")
        ok = False
    finally:
        await engine.dispose()
    if settings.b24mail_allow_insecure_portals:
        lines.append("WARNING: B24MAIL_ALLOW_INSECURE_PORTALS is on (for local testing only)")
    if problem:
        lines.append(problem)
    return lines, ok


async def rotate_keys(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        repository = LinkRepository(
            sessions=create_session_factory(engine), box=SecretBox(settings.secret_keys())
        )
        return await repository.rotate_keys()
    finally:
        await engine.dispose()
