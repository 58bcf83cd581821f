"""b24mail serve | web | worker | migrate | check | rotate-keys."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from bot import __version__
from bot.logs import setup_logging
from bot.settings import ConfigurationError, Settings
from bot.store.crypto import SecretBox

log = logging.getLogger("bot.cli")

EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="b24mail", description="Send and reply to e-mail from Slack through Bitrix24."
    )
    parser.add_argument("--version", action="version", version=f"b24mail {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("serve", help="apply migrations, then run the app (HTTP or Socket Mode)")
    commands.add_parser(
        "web", help="only the HTTP app, in WEB_CONCURRENCY processes (scale-out on PostgreSQL)"
    )
    commands.add_parser("worker", help="run only the delivery worker (scale-out on PostgreSQL)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    commands.add_parser("check", help="check configuration and database; prints no secrets")
    commands.add_parser("rotate-keys", help="re-encrypt stored secrets with the first key")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    try:
        settings = Settings()
    except ValidationError as exc:
        return _config_error(_describe_validation(exc))
    except ConfigurationError as exc:
        return _config_error(str(exc))
    setup_logging(settings.log_level, settings.log_format)
    run: Callable[[Settings], int] = _COMMANDS[args.command]
    try:
        return run(settings)
    except ConfigurationError as exc:
        return _config_error(str(exc))
    except KeyboardInterrupt:
        return 130


def _serve(settings: Settings) -> int:
    problem = settings.slack_credentials_problem()
    if problem:
        return _config_error(problem)
    box = SecretBox(settings.secret_keys())  # fail before binding a port when unusable
    from bot.runtime import serve

    asyncio.run(serve(settings, box=box))
    return 0


def _web(settings: Settings) -> int:
    problem = settings.slack_credentials_problem()
    if problem:
        return _config_error(problem)
    if settings.socket_mode:
        return _config_error(
            "b24mail web serves Slack's HTTP request URL; Socket Mode (SLACK_APP_TOKEN is set) "
            "runs in `b24mail serve`."
        )
    if settings.is_sqlite:
        # SQLite is one process's database (its hourly cap and claims rely on one writer).
        return _config_error(
            "b24mail web runs the HTTP app in several processes beside `b24mail worker`, which "
            "needs PostgreSQL: set DATABASE_URL=postgresql://… (on SQLite run `b24mail serve`)."
        )
    settings.secret_keys()  # fail before binding a port when the keys are unusable
    from bot.runtime import run_web

    run_web(settings)
    return 0


def _worker(settings: Settings) -> int:
    problem = settings.slack_credentials_problem()
    if problem:
        return _config_error(problem)
    from bot.runtime import work

    asyncio.run(work(settings))
    return 0


def _migrate(settings: Settings) -> int:
    from bot.runtime import migrate

    asyncio.run(migrate(settings))
    print("Database is at the latest migration.")
    return 0


def _check(settings: Settings) -> int:
    from bot.runtime import check

    lines, ok = asyncio.run(check(settings))
    for line in lines:
        print(line)
    return 0 if ok else 1


def _rotate_keys(settings: Settings) -> int:
    from bot.runtime import rotate_keys

    count = asyncio.run(rotate_keys(settings))
    print(f"Re-encrypted {count} stored webhook(s) with the first key.")
    return 0


_COMMANDS: dict[str, Callable[[Settings], int]] = {
    "serve": _serve,
    "web": _web,
    "worker": _worker,
    "migrate": _migrate,
    "check": _check,
    "rotate-keys": _rotate_keys,
}


def _config_error(message: str) -> int:
    print(f"b24mail: configuration problem\n{message}", file=sys.stderr)
    return EXIT_CONFIG


def _describe_validation(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]).upper()
        # Never echo the input: it may be a secret.
        lines.append(f"  - {name}: {error['msg']}")
    return "Some settings are invalid:\n" + "\n".join(lines)
