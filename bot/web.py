"""The HTTP face of b24mail: Slack's request URL, health and readiness for the platform."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.services import Services
from bot.store.migrations import is_current

log = logging.getLogger(__name__)

Lifecycle = Callable[[], Awaitable[None]]


def create_web_app(
    services: Services,
    bolt_app: AsyncApp,
    *,
    on_startup: Lifecycle | None = None,
    on_shutdown: Lifecycle | None = None,
    close_services: bool = True,
) -> Starlette:
    handler = AsyncSlackRequestHandler(bolt_app)

    async def slack_events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(_request: Request) -> Response:
        ok = await _database_ok(services)
        return JSONResponse(
            {"status": "ok" if ok else "database unreachable"}, status_code=200 if ok else 503
        )

    async def readyz(_request: Request) -> Response:
        if not await _database_ok(services):
            return JSONResponse({"status": "database unreachable"}, status_code=503)
        try:
            current = await is_current(services.engine)
        except SQLAlchemyError:
            current = False
        if not current:
            return JSONResponse(
                {"status": "migrations pending: run `b24mail migrate`"}, status_code=503
            )
        return JSONResponse({"status": "ready"})

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if on_startup is not None:
            await on_startup()
        try:
            yield {}
        finally:
            if on_shutdown is not None:
                await on_shutdown()
            if close_services:
                await services.aclose()

    return Starlette(
        routes=[
            Route("/slack/events", slack_events, methods=["POST"]),
            Route("/slack/install", slack_events, methods=["GET"]),
            Route("/slack/oauth_redirect", slack_events, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


async def _database_ok(services: Services) -> bool:
    try:
        async with services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return False
    return True
