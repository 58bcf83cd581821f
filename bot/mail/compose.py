"""Validating a composed e-mail: every problem is reported per field, with the bad values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from typing import Any

from bot.mail.addresses import (
    AddressList,
    count_recipients,
    parse_address_list,
    remove_invisible,
    smtputf8_required,
)

SUBJECT_MAX = 250
BODY_MAX_CHARS = 50_000
SEND_AT_MAX_AHEAD = timedelta(days=365)
# Slack's pickers choose whole minutes: the minute now running is "now", not "in the past".
SEND_AT_GRACE = timedelta(seconds=60)


@dataclass(frozen=True, kw_only=True)
class ComposedBody:
    """A message body the Slack layer has already converted from its rich text."""

    html: str  # what is sent
    plain: str  # what the length cap counts
    source: dict[str, Any]  # the rich_text block, kept to re-open the draft


@dataclass(frozen=True, kw_only=True)
class ComposeInput:
    sender: str | None  # the chosen sender's e-mail address
    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    body: ComposedBody | None = None  # None when nothing visible was typed


@dataclass(frozen=True)
class FieldProblem:
    """What is wrong with one field: a wording key (validation.<code>) and its values."""

    field: str  # from | to | cc | bcc | subject | body
    code: str
    params: dict[str, Any] = dataclass_field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ValidEmail:
    sender: str  # "Name <email>" as Bitrix24 lists it
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    body_html: str
    body_source: dict[str, Any] | None


def validate_compose(
    form: ComposeInput,
    *,
    senders: Sequence[Mapping[str, Any]],
    max_recipients: int,
    require_to: bool = True,
) -> ValidEmail | list[FieldProblem]:
    problems: list[FieldProblem] = []
    sender = _find_sender(form.sender, senders)
    if sender is None:
        problems.append(FieldProblem("from", "unknown_sender"))
    lists: dict[str, AddressList] = {}
    for name, text in (("to", form.to), ("cc", form.cc), ("bcc", form.bcc)):
        parsed = parse_address_list(text)
        lists[name] = parsed
        if parsed.invalid:
            problems.append(
                FieldProblem(name, "invalid_addresses", {"values": ", ".join(parsed.invalid[:10])})
            )
        # An error, not a warning: a warning that still sends needs a confirm step, and an
        # e-mail that bounces an hour later is worse than being told now.
        international = [a.email for a in parsed.addresses if smtputf8_required(a.email)]
        if international:
            problems.append(
                FieldProblem(
                    name, "non_ascii_local_part", {"values": ", ".join(international[:10])}
                )
            )
    if require_to and not lists["to"].addresses and not lists["to"].invalid:
        problems.append(FieldProblem("to", "no_recipients"))
    total = count_recipients(*lists.values())
    if total > max_recipients:
        problems.append(
            FieldProblem("to", "too_many_recipients", {"count": total, "cap": max_recipients})
        )
    subject = " ".join(remove_invisible(form.subject).split())
    if not subject:
        problems.append(FieldProblem("subject", "required"))
    elif len(subject) > SUBJECT_MAX:
        problems.append(
            FieldProblem(
                "subject", "subject_too_long", {"length": len(subject), "cap": SUBJECT_MAX}
            )
        )
    body = form.body
    if body is None:
        problems.append(FieldProblem("body", "body_empty"))
    else:
        length = len(body.plain)
        if length > BODY_MAX_CHARS:
            problems.append(
                FieldProblem("body", "body_too_long", {"length": length, "cap": BODY_MAX_CHARS})
            )
    if problems or sender is None or body is None:
        return _first_per_field(problems)
    return ValidEmail(
        sender=sender,
        to=_dedupe_across(lists["to"], ()),
        cc=_dedupe_across(lists["cc"], (lists["to"],)),
        bcc=_dedupe_across(lists["bcc"], (lists["to"], lists["cc"])),
        subject=subject,
        body_html=body.html,
        body_source=body.source,
    )


def _find_sender(value: str | None, senders: Sequence[Mapping[str, Any]]) -> str | None:
    if not value:
        return None
    for sender in senders:
        if str(sender.get("email", "")).lower() == value.lower():
            return str(sender.get("sender") or sender.get("email"))
    return None


def _dedupe_across(addresses: AddressList, earlier: Sequence[AddressList]) -> list[str]:
    """An address already in To is not repeated in Cc or Bcc (one copy per person)."""
    seen = {a.email.lower() for group in earlier for a in group.addresses}
    return [a.formatted() for a in addresses.addresses if a.email.lower() not in seen]


def _first_per_field(problems: list[FieldProblem]) -> list[FieldProblem]:
    """Slack shows one error per block: keep the first problem of each field."""
    seen: set[str] = set()
    kept = []
    for problem in problems:
        if problem.field not in seen:
            seen.add(problem.field)
            kept.append(problem)
    return kept


def check_send_at(send_at: datetime | None, *, now: datetime) -> FieldProblem | None:
    """A chosen sending time must be from now (this minute counts) to a year ahead."""
    if send_at is None:
        return None
    if send_at < now - SEND_AT_GRACE:
        return FieldProblem("send_at", "send_at_past")
    if send_at > now + SEND_AT_MAX_AHEAD:
        return FieldProblem("send_at", "send_at_too_far")
    return None
