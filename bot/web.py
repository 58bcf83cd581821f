"""The HTTP face of b24mail: Slack's request URL, health, readiness and metrics for the platform.

Each Slack request gets a correlation id that every line logged while it is handled carries
(and the background work it starts), and ends with one line: kind, callback, status, time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from prometheus_client import Counter, Histogram
from slack_bolt.adapter.starlette.async_handler import (
    AsyncSlackRequestHandler,
    to_async_bolt_request,
    to_starlette_response,
)
from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.request_verification.async_request_verification import (
    AsyncRequestVerification,
)
from slack_bolt.request import payload_utils
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot import metrics
from bot.background import new_error_id
from bot.logs import correlation, new_correlation_id
from bot.request_body import BodyRefused, PayloadTypeError, check_payload_types, read_body
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
    if verifier is not None:
        # Every request reaches Bolt through dispatch below, which has verified it already.
        _drop_bolt_verification(bolt_app)

    async def dispatch(request: Request) -> tuple[str, str, Response]:
        """The answer to one request to /slack/events, with its kind and callback for the log."""
        if request.method != "POST":
            return "oauth", request.url.path, await handler.handle(request)
        try:
            body = await read_body(request)
        except BodyRefused as exc:
            return "refused", "", _refused(exc)
        # Verify before parsing: Bolt parses the body (and raises on junk) before its own check,
        # and on a bad signature it logs the whole body, which may hold a pasted webhook.
        if verifier is not None and not _signed(verifier, request, body):
            log.info("refused a Slack request with a missing, wrong or stale signature")
            return "unverified", "", PlainTextResponse("invalid request signature", 401)
        try:
            bolt_request = to_async_bolt_request(request, body)
            if isinstance(bolt_request.body, dict):
                check_payload_types(bolt_request.body)
            _check_shape(bolt_request.body)
        except _MALFORMED as exc:
            return "malformed", "", _malformed(exc)
        kind, name = describe(bolt_request.body)
        return kind, name, to_starlette_response(await bolt_app.async_dispatch(bolt_request))

    async def slack_events(request: Request) -> Response:
        started = time.perf_counter()
        correlation_id = new_correlation_id()
        with correlation(correlation_id):
            # An exception past Bolt's error handler is a 500: still one line and its metrics.
            kind, name, status = "error", "", 500
            response: Response | None = None
            try:
                kind, name, response = await dispatch(request)
                status = response.status_code
                return response
            finally:
                elapsed = time.perf_counter() - started
                _count_request(kind, status, elapsed)
                if response is not None:
                    # Written on the loop's next turn, once the answer is on its way: the line
                    # costs the ack nothing, and lines of requests answered together are
                    # written together (the logging code stays hot in the CPU's caches).
                    asyncio.get_running_loop().call_soon(
                        _log_request, kind, name, status, elapsed, correlation_id
                    )
                else:
                    _log_request(kind, name, status, elapsed, correlation_id)

    async def healthz(_request: Request) -> Response:
        # Liveness only: the process answers. A database outage is /readyz's business; failing
        # liveness on it would have the platform restart every healthy process at once.
        return JSONResponse({"status": "ok"})

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
            Route("/metrics", metrics_endpoint(services), methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def create_worker_web_app(services: Services, *, alive: Callable[[], bool]) -> Starlette:
    """What `b24mail worker` serves on B24MAIL_METRICS_PORT: /metrics, and /healthz (the
    worker's loops run)."""

    async def healthz(_request: Request) -> Response:
        if alive():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "stopped"}, status_code=503)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_endpoint(services), methods=["GET"]),
        ]
    )


def metrics_endpoint(services: Services) -> Callable[[Request], Awaitable[Response]]:
    """Prometheus text; with B24MAIL_METRICS_TOKEN set, only for `Authorization: Bearer <it>`."""
    token = services.settings.b24mail_metrics_token
    expected = f"Bearer {token.get_secret_value()}".encode() if token else None

    async def endpoint(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return PlainTextResponse("unauthorized", status_code=401)
        body = await metrics.exposition(services.engine)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    return endpoint


# Names from the payload go into logs: app-defined ids are short words; anything else is not ours.
_NAME = re.compile(r"[A-Za-z0-9_./:-]{1,64}")


def describe(body: dict[str, Any]) -> tuple[str, str]:
    """(kind, callback) of a Slack payload: the kind of request and which command, view,
    action, shortcut or event it is for. Never user text."""
    if "command" in body:
        return "command", _name(body.get("command"))
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in _KINDS:
        return "other", ""
    name: object = None
    if kind in ("view_submission", "view_closed"):
        name = _at(body, "view", "callback_id")
    elif kind == "block_actions":
        actions = body.get("actions")
        name = _at(actions[0], "action_id") if isinstance(actions, list) and actions else None
    elif kind == "block_suggestion":
        name = body.get("action_id")
    elif kind in ("shortcut", "message_action"):
        name = body.get("callback_id")
    elif kind == "event_callback":
        name = _at(body, "event", "type")
    return kind, _name(name)


def _at(value: object, *path: str) -> object:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


_KINDS = frozenset(
    {
        "view_submission",
        "view_closed",
        "block_actions",
        "block_suggestion",
        "shortcut",
        "message_action",
        "event_callback",
        "url_verification",
    }
)


def _name(value: object) -> str:
    return value if isinstance(value, str) and _NAME.fullmatch(value) else ""


# The labelled children of the per-request metrics, looked up once per label set: labels()
# takes a lock and validates its arguments on every call.
_ACK_BY_KIND: dict[str, Histogram] = {}
_REQUESTS_BY_KIND_STATUS: dict[tuple[str, int], Counter] = {}


def _count_request(kind: str, status: int, elapsed: float) -> None:
    ack = _ACK_BY_KIND.get(kind)
    if ack is None:
        ack = _ACK_BY_KIND[kind] = metrics.ACK_SECONDS.labels(kind)
    ack.observe(elapsed)
    requests = _REQUESTS_BY_KIND_STATUS.get((kind, status))
    if requests is None:
        requests = metrics.SLACK_REQUESTS.labels(kind, str(status))
        _REQUESTS_BY_KIND_STATUS[kind, status] = requests
    requests.inc()


def _log_request(kind: str, name: str, status: int, elapsed: float, correlation_id: str) -> None:
    """The request's one line. It runs after the request's correlation block has ended, so it
    carries the id itself; nothing is built when INFO is off."""
    if not log.isEnabledFor(logging.INFO):
        return
    # Made by hand, not by log.info(): that would walk the stack for the caller, which is this
    # function (file and line given here); handlers and filters see the record as usual.
    record = log.makeRecord(
        log.name,
        logging.INFO,
        __file__,
        _LOG_REQUEST_LINE,
        "slack request",
        (),
        None,
        func="_log_request",
        extra={
            "correlation_id": correlation_id,
            "fields": {
                "event": "slack_request",
                "kind": kind,
                "callback": name,
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
            },
        },
    )
    log.handle(record)


_LOG_REQUEST_LINE = _log_request.__code__.co_firstlineno


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
    return KeyedSignatureVerifier(secret.get_secret_value() if secret else secrets.token_hex(32))


class KeyedSignatureVerifier(SignatureVerifier):
    """slack_sdk's verifier with the HMAC key prepared once: each request copies it instead of
    deriving it from the secret again. Same checks, same answers (a test compares them)."""

    def __init__(self, signing_secret: str) -> None:
        super().__init__(signing_secret)
        self._keyed = hmac.new(signing_secret.encode(), digestmod=hashlib.sha256)

    def generate_signature(self, *, timestamp: str, body: str | bytes) -> str | None:
        if timestamp is None:
            return None
        if body is None:
            body = ""
        if isinstance(body, bytes):
            # As slack_sdk does: a body that is not UTF-8 raises, and is refused.
            body = body.decode("utf-8")
        mac = self._keyed.copy()
        mac.update(f"v0:{timestamp}:{body}".encode())
        return f"v0={mac.hexdigest()}"


def _drop_bolt_verification(bolt_app: AsyncApp) -> None:
    """Take Bolt's own signature check out of an app served only behind create_web_app's.

    It would compute the same HMAC a second time. The list is Bolt's private one
    (tests/security/test_signatures.py fails if it moves); if it is not there, Bolt keeps
    checking — twice is slower, never weaker."""
    middleware = getattr(bolt_app, "_async_middleware_list", None)
    if isinstance(middleware, list):
        middleware[:] = [m for m in middleware if not isinstance(m, AsyncRequestVerification)]


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
    # A PayloadTypeError names only the key, never its value.
    detail = str(exc) if isinstance(exc, PayloadTypeError) else type(exc).__name__
    log.warning(
        "refused a signed request that is not a readable Slack payload: %s (error id %s)",
        detail,
        error_id,
    )
    return PlainTextResponse(f"malformed request (error id {error_id})", status_code=400)


def _refused(exc: BodyRefused) -> Response:
    """Too large or not UTF-8: refused before the signature check, so logged at INFO only."""
    log.info("refused a Slack request body: %s", exc.reason)
    return PlainTextResponse(exc.reason, status_code=exc.status)


async def _database_ok(services: Services) -> bool:
    try:
        async with services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return False
    return True
