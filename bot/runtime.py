"""What the CLI commands do, as async functions over Settings (testable without a shell)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Iterator
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.settings import ConfigurationError, Settings
from bot.store.crypto import SecretBox
from bot.store.db import create_engine, create_session_factory
from bot.store.links import LinkRepository
from bot.store.migrations import (
    UnknownRevision,
    current_revision,
    describe_revisions,
    head_revision,
    pending_revisions,
    upgrade,
)

if TYPE_CHECKING:
    import uvicorn
    from slack_bolt.async_app import AsyncApp
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.applications import Starlette

    from bot.services import Services
    from bot.worker import Worker

log = logging.getLogger("bot.runtime")


async def migrate(settings: Settings) -> list[tuple[str, str]]:
    """Apply the pending migrations; returns (revision, description) of each one applied."""
    engine = create_engine(settings.database_url)
    try:
        return await _upgrade(engine)
    finally:
        await engine.dispose()


async def _upgrade(engine: AsyncEngine) -> list[tuple[str, str]]:
    try:
        pending = pending_revisions(await current_revision(engine))
    except UnknownRevision as exc:
        raise ConfigurationError(_unknown_revision(exc)) from exc
    if pending:
        await upgrade(engine)
    return pending


def _unknown_revision(exc: UnknownRevision) -> str:
    return (
        f"The database is at migration {exc}, which this version of b24mail does not know: "
        "a newer version migrated it. Run that version (or newer)."
    )


async def serve(settings: Settings, *, box: SecretBox | None = None) -> None:
    """Apply migrations, then run web (HTTP or Socket Mode) and the worker in this process.
    `box`: the secret keys, when the caller already loaded them."""
    import uvicorn

    from bot.app import create_app
    from bot.services import build_services
    from bot.web import create_web_app
    from bot.worker import Worker

    engine = create_engine(settings.database_url)
    applied = await _upgrade(engine)
    if applied:
        log.info("applied %d migration(s): %s", len(applied), describe_revisions(applied))
    services = build_services(settings, engine=engine, box=box)
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
    options = uvicorn_options(grace=settings.b24mail_shutdown_grace_seconds)
    config = uvicorn.Config(web, host=settings.host, port=settings.port, **options)
    log.info("serving HTTP on %s:%s (POST /slack/events)", settings.host, settings.port)
    await graceful_server(config).serve()


def graceful_server(config: uvicorn.Config) -> uvicorn.Server:
    """A uvicorn server that stops on SIGTERM/SIGINT like uvicorn's, but does not re-raise the
    signal once it has drained: that ended `b24mail serve` with 143 (or a KeyboardInterrupt)
    after a clean stop. A stop after a clean drain exits 0, like `b24mail worker`."""
    import uvicorn

    class Graceful(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {
                sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Graceful(config)


def uvicorn_options(*, grace: float | None = None) -> dict[str, Any]:
    """How `serve` and `web` run uvicorn (also used by the benchmarks' bare Bolt app, to
    compare alike). On SIGTERM uvicorn stops accepting, lets requests in flight finish for up
    to `grace` seconds, then runs the lifespan shutdown."""
    options: dict[str, Any] = {"log_config": None, "lifespan": "on", "access_log": False}
    if grace is not None:
        options["timeout_graceful_shutdown"] = grace
    return options


def run_web(settings: Settings) -> None:
    """`b24mail web`: only the HTTP app (no worker, no migrations: the release phase runs
    them), in WEB_CONCURRENCY uvicorn processes sharing one port. Returns once they stopped."""
    import uvicorn

    from bot.metrics import MULTIPROCESS_ENV

    workers = settings.web_concurrency
    log.info(
        "serving HTTP on %s:%s with %d process(es) (POST /slack/events)",
        settings.host,
        settings.port,
        workers,
    )
    with _metrics_directory(MULTIPROCESS_ENV, needed=workers > 1):
        if workers == 1:
            # uvicorn.run would serve with a server that re-raises SIGTERM after draining.
            config = uvicorn.Config(
                "bot.runtime:asgi_app",
                factory=True,
                host=settings.host,
                port=settings.port,
                **uvicorn_options(grace=settings.b24mail_shutdown_grace_seconds),
            )
            graceful_server(config).run()
            return
        uvicorn.run(
            "bot.runtime:asgi_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            **uvicorn_options(grace=settings.b24mail_shutdown_grace_seconds),
        )


@contextlib.contextmanager
def _metrics_directory(variable: str, *, needed: bool) -> Iterator[None]:
    """A fresh private directory for prometheus_client's multiprocess files, set in the
    environment the uvicorn processes inherit (they read it when they import it), and removed
    afterwards. Never a shared one: another run's files would be summed in."""
    if not needed:
        yield
        return
    path = tempfile.mkdtemp(prefix="b24mail-metrics-")
    previous = os.environ.get(variable)
    os.environ[variable] = path
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = previous
        shutil.rmtree(path, ignore_errors=True)


def asgi_app() -> Starlette:
    """The ASGI factory `b24mail web` hands uvicorn: each uvicorn process builds its own app
    (settings, logging, connection pool) from the environment it inherited; the settings were
    already checked by the command before any process started."""
    from bot.app import create_app
    from bot.logs import setup_logging
    from bot.services import build_services
    from bot.web import create_web_app

    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    services = build_services(settings)
    return create_web_app(services, create_app(services))


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
    """`b24mail worker`: delivery and status messages only, until SIGTERM/SIGINT; with
    B24MAIL_METRICS_PORT, also /metrics and /healthz on that port."""
    from bot.services import build_services
    from bot.worker import Worker

    engine = create_engine(settings.database_url)
    try:
        problem = await _migrations_problem(engine)
    except (SQLAlchemyError, OSError) as exc:
        # A database still starting is the worker's loops' business: they retry.
        log.warning("could not read the database's migrations (%s)", type(exc).__name__)
        problem = None
    if problem:
        await engine.dispose()
        raise ConfigurationError(f"b24mail worker cannot start: {problem}.")
    services = build_services(settings, engine=engine, cache_links=False)
    worker = Worker(services)
    stop = _stop_on_signals()
    try:
        # Before the worker claims anything: a port that cannot be bound stops the start.
        side = await _start_metrics_server(settings, services, worker)
    except ConfigurationError:
        await services.aclose()
        raise
    await worker.start()
    log.info("worker running")
    try:
        await stop.wait()
    finally:
        log.info(
            "worker stopping: e-mails not yet sent go back to the queue; those in flight may "
            "finish within %.0f s",
            settings.b24mail_shutdown_grace_seconds,
        )
        await worker.stop()
        if side is not None:
            await side.stop()
        await services.aclose()
        log.info("worker stopped")


class _SideServer:
    """uvicorn serving a small app beside the worker, on the worker's own event loop."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None]) -> None:
        self._server = server
        self._task = task

    async def stop(self) -> None:
        self._server.should_exit = True
        await self._task


async def _start_metrics_server(
    settings: Settings, services: Services, worker: Worker
) -> _SideServer | None:
    if settings.b24mail_metrics_port is None:
        return None
    import uvicorn

    from bot.web import create_worker_web_app

    class Quiet(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # The worker handles SIGTERM itself (graceful stop), not this side server.
            yield

    host, port = settings.host, settings.b24mail_metrics_port
    try:
        # Bound here, not by uvicorn: it would end the whole process with SystemExit.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigurationError(
            f"B24MAIL_METRICS_PORT: cannot listen on {host}:{port} ({exc.strerror}); "
            "choose a free port for each worker"
        ) from exc
    app = create_worker_web_app(services, alive=worker.alive)
    server = Quiet(uvicorn.Config(app, host=host, port=port, **uvicorn_options(grace=1)))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="b24mail-metrics")
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    log.info("serving /metrics and /healthz on %s:%s", host, port)
    return _SideServer(server, task)


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
    lines.append(f"slack mode: {settings.slack_mode_reason()}")
    problem = settings.slack_credentials_problem()
    lines.append(
        "slack credentials: " + ("missing or inconsistent (see below)" if problem else "set")
    )
    if problem:
        ok = False
    try:
        # Read-only: check never writes the key file `serve` would generate.
        keys = settings.secret_keys(generate=False)
        lines.append(
            f"encryption keys: {len(keys)} configured"
            if keys
            else f"encryption keys: none yet; `b24mail serve` generates one into {settings.key_file}"
        )
    except ConfigurationError as exc:
        lines.append(f"encryption keys: {exc}")
        ok = False
    database_line, database_ok = await _check_database(settings)
    lines.append(database_line)
    ok = ok and database_ok
    if settings.b24mail_metrics_token is not None:
        lines.append("metrics: /metrics requires the bearer token B24MAIL_METRICS_TOKEN")
    else:
        lines.append(
            f"metrics: /metrics answers anyone who reaches {settings.host}:{settings.port} "
            "(set B24MAIL_METRICS_TOKEN to require a bearer token)"
        )
    if settings.b24mail_allow_insecure_portals:
        lines.append("WARNING: B24MAIL_ALLOW_INSECURE_PORTALS is on (for local testing only)")
    if problem:
        lines.append(problem)
    return lines, ok


async def _check_database(settings: Settings) -> tuple[str, bool]:
    """The database line of `check`, and whether the app could run on it; creates nothing."""
    sqlite_file = settings.sqlite_path
    if sqlite_file is not None and not sqlite_file.exists():
        # Connecting would create the file: `check` only looks.
        return (
            f"database connection: no file {sqlite_file} yet: run `b24mail migrate` to create it "
            "(`b24mail serve` migrates too)",
            False,
        )
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        problem = await _migrations_problem(engine)
    except (SQLAlchemyError, OSError) as exc:
        return f"database connection: failed ({type(exc).__name__})", False
    finally:
        await engine.dispose()
    if problem:
        return f"database connection: ok; {problem}", False
    return f"database connection: ok; migrations current ({head_revision()})", True


async def _migrations_problem(engine: AsyncEngine) -> str | None:
    """Why the app cannot run on this database's tables, or None when they are current."""
    try:
        pending = pending_revisions(await current_revision(engine))
    except UnknownRevision as exc:
        return _unknown_revision(exc)
    if not pending:
        return None
    return (
        f"migrations pending: run `b24mail migrate` ({len(pending)} not applied yet: "
        f"{describe_revisions(pending)})"
    )


async def rotate_keys(settings: Settings) -> int:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        from bot.slack.installations import EncryptedInstallationStore

        box = SecretBox(settings.secret_keys())
        repository = LinkRepository(sessions=create_session_factory(engine), box=box)
        count = await repository.rotate_keys()
        # Slack tokens of OAuth installs (whatever the mode now: rows may be left from before).
        installations = EncryptedInstallationStore(
            client_id=settings.slack_client_id or "", engine=engine, box=box
        )
        tokens = await installations.rotate_keys()
        log.info("re-encrypted %d stored Slack token(s) with the first key", tokens)
        from bot.store.writing import WritingRepository

        drafts = await WritingRepository(
            sessions=create_session_factory(engine), box=box
        ).rotate_keys()
        log.info("re-encrypted %d draft(s) with the first key", drafts)
        return count
    finally:
        await engine.dispose()
