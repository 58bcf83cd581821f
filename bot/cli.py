"""b24mail serve | web | worker | migrate | check | rotate-keys | audit export."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from bot import __version__, audit_export
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
    for name, (summary, details) in _HELP.items():
        commands.add_parser(
            name,
            help=summary,
            description=f"{summary[0].upper()}{summary[1:]}.\n\n{details}\n\n{_SETTINGS_NOTE}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    audit_export.add_parser(commands)
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
    if args.command == "audit":
        return audit_export.run(settings, args)
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
    from bot.store.migrations import describe_revisions, head_revision

    applied = asyncio.run(migrate(settings))
    if applied:
        print(f"Applied {len(applied)} migration(s): {describe_revisions(applied)}.")
        print(f"The database is now at the latest migration ({head_revision()}).")
    else:
        print(f"Nothing to apply: the database is at the latest migration ({head_revision()}).")
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


# (one line for `b24mail --help`, what `b24mail COMMAND --help` adds to it)
_HELP: dict[str, tuple[str, str]] = {
    "serve": (
        "apply migrations, then run the whole app in this process",
        "Serves Slack's request URL (POST /slack/events on HOST:PORT, with /healthz, /readyz\n"
        "and /metrics), or connects out in Socket Mode when SLACK_APP_TOKEN is set, and runs\n"
        "the delivery worker beside it. The embedded default: a SQLite file ./b24mail.db and a\n"
        "generated key ./b24mail.key. SIGTERM or Ctrl-C stops it gracefully (exit 0).",
    ),
    "web": (
        "only the HTTP app, in WEB_CONCURRENCY processes (scale-out on PostgreSQL)",
        "Serves Slack's request URL on HOST:PORT from WEB_CONCURRENCY processes sharing the\n"
        "port; applies no migrations (run `b24mail migrate` first) and sends no e-mail (run\n"
        "`b24mail worker` beside it). Needs PostgreSQL in DATABASE_URL.",
    ),
    "worker": (
        "only the delivery worker (scale-out on PostgreSQL)",
        "Sends the queued e-mails through Bitrix24 and posts their status messages to Slack;\n"
        "run one or more beside `b24mail web`. Applies no migrations, and refuses to start\n"
        "until `b24mail migrate` has applied them. With B24MAIL_METRICS_PORT it serves\n"
        "/metrics and /healthz on that port.",
    ),
    "migrate": (
        "apply the pending database migrations and exit",
        "Creates or upgrades the tables in DATABASE_URL and says which migrations it applied\n"
        "(or that none were pending). Run it before starting a new version of `web`/`worker`.",
    ),
    "check": (
        "check the configuration and the database, changing nothing",
        "Prints the Slack mode and why, which settings are missing, whether the encryption\n"
        "keys are usable, whether the database answers and its migrations are current. Names\n"
        "no secret and creates no file. Exit code 0 when all is well, 1 when something needs\n"
        "doing, 2 when a setting is invalid.",
    ),
    "rotate-keys": (
        "re-encrypt stored secrets with the first key",
        "Re-encrypts every stored Bitrix24 webhook and Slack token with the first key of\n"
        "B24MAIL_SECRET_KEYS, so the older keys can then be removed.",
    ),
}
_SETTINGS_NOTE = (
    "Settings come from the environment or a .env file in the working directory (see the\n"
    "README's configuration table); `b24mail check` shows what is missing."
)

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
