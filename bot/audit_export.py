"""`b24mail audit export`: the audit log as CSV or JSON lines, for keeping or for a review.

A command of its own module so bot/cli.py only registers and calls it. Records come in id
order, from --since (inclusive) up to --until (exclusive), for one workspace (--team) or all.
The counts go to stderr, so stdout holds nothing but the records.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO

from bot.mail.audit import ExportFormat, write_export
from bot.settings import Settings
from bot.store.audit import AuditRepository
from bot.store.db import create_engine, create_session_factory

EXIT_USAGE = 2


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser("audit", help="the audit log of e-mails sent and policy changes")
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export",
        help="write audit records to stdout (or --output) as CSV or JSON lines",
        description="Write audit records (who, when, from, recipients, subject, outcome; never "
        "a body). Keep a copy before uninstalling b24mail from a workspace: an uninstall "
        "removes that workspace's records.",
    )
    export.add_argument("--since", required=True, help="first day or moment, e.g. 2026-01-01 (UTC)")
    export.add_argument("--until", help="end (exclusive), e.g. 2026-02-01 (UTC); default: now")
    export.add_argument("--team", help="one workspace's team id (T…); default: every workspace")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", dest="fmt")
    export.add_argument("--output", type=Path, help="write to this file instead of stdout")


def parse_moment(text: str) -> datetime:
    """`2026-01-01` (midnight UTC) or an ISO date-time (UTC when it names no zone)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO date-time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        since = parse_moment(args.since)
        until = parse_moment(args.until) if args.until else None
    except ValueError as exc:
        print(f"b24mail audit export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if until is not None and until <= since:
        print("b24mail audit export: --until must be after --since", file=sys.stderr)
        return EXIT_USAGE
    with contextlib.ExitStack() as stack:
        out: TextIO = (
            stack.enter_context(args.output.open("w", encoding="utf-8", newline=""))
            if args.output
            else sys.stdout
        )
        count = asyncio.run(
            export(settings, out, since=since, until=until, team_id=args.team, fmt=args.fmt)
        )
    where = f" to {args.output}" if args.output else ""
    print(f"Exported {count} audit record(s){where}.", file=sys.stderr)
    return 0


async def export(
    settings: Settings,
    out: TextIO,
    *,
    since: datetime,
    until: datetime | None,
    team_id: str | None,
    fmt: ExportFormat,
) -> int:
    engine = create_engine(settings.database_url)
    try:
        repository = AuditRepository(sessions=create_session_factory(engine))
        records = repository.records(since=since, until=until, team_id=team_id)
        return await write_export(records, out, fmt=fmt)
    finally:
        await engine.dispose()
