"""The HTTP face of b24mail: Slack's request URL, health and readiness for the platform."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from slack_bolt.adapter.starlette.async_handler import (
    AsyncSlackRequestHandler,
    to_async_bolt_request,
    to_starlette_response,
)
from slack_bolt.async_app import AsyncApp
from slack_bolt.request import payload_utils
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.background import new_error_id
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
    verifier = _verifier(services)

    async def slack_events(request: Request) -> Response:
        if request.method != "POST":
            return await handler.handle(request)
        body = await request.body()
        # Verify before parsing: Bolt parses the body (and raises on junk) before its own check,
        # and on a bad signature it logs the whole body, which may hold a pasted webhook.
        if verifier is not None and not _signed(verifier, request, body):
            log.info("refused a Slack request with a missing, wrong or stale signature")
            return PlainTextResponse("invalid request signature", status_code=401)
        try:
            bolt_request = to_async_bolt_request(request, body)
            _check_shape(bolt_request.body)
        except _MALFORMED as exc:
            return _malformed(exc)
        return to_starlette_response(await bolt_app.async_dispatch(bolt_request))

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


# What Bolt's request parsing raises on a body that is not a Slack payload: bad UTF-8 or JSON,
# JSON nested too deep, or a payload of the wrong shape (a list, `"user": 5`, no `type`).
_MALFORMED = (ValueError, TypeError, LookupError, AttributeError, RecursionError)


def _check_shape(body: object) -> None:
    """Raise as Bolt would while dispatching: it extracts every payload kind for its listeners
    and for the error handler alike, so a body that breaks one of these gets no handler at all."""
    if not isinstance(body, dict):
        raise TypeError("not a JSON object")
    for read in _PAYLOAD_READERS:
        read(body)


_PAYLOAD_READERS = (
    payload_utils.to_options,
    payload_utils.to_shortcut,
    payload_utils.to_action,
    payload_utils.to_view,
    payload_utils.to_command,
    payload_utils.to_event,
    payload_utils.to_message,
    payload_utils.to_step,
)


def _verifier(services: Services) -> SignatureVerifier | None:
    """None only in Socket Mode, where requests arrive over Slack's socket and are not signed."""
    settings = services.settings
    if settings.socket_mode:
        return None
    secret = settings.slack_signing_secret
    # No secret in HTTP mode (the CLI refuses to start that way): a secret nobody has refuses all.
    return SignatureVerifier(secret.get_secret_value() if secret else secrets.token_hex(32))


def _signed(verifier: SignatureVerifier, request: Request, body: bytes) -> bool:
    try:
        return verifier.is_valid(
            body=body,
            timestamp=request.headers.get("x-slack-request-timestamp"),
            signature=request.headers.get("x-slack-signature"),
        )
    except (ValueError, TypeError):
        # A timestamp that is not a number, or a signature with non-ASCII characters.
        return False


def _malformed(exc: BaseException) -> Response:
    """A signed request we cannot read: 400, and a log line without the body (it may hold secrets)."""
    error_id = new_error_id()
    log.warning(
        "refused a signed request that is not a readable Slack payload: %s (error id %s)",
        type(exc).__name__,
        error_id,
    )
    return PlainTextResponse(f"malformed request (error id {error_id})", status_code=400)


async def _database_ok(services: Services) -> bool:
    try:
        async with services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return False
    return True
