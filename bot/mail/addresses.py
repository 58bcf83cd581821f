"""Parse the recipient lists users type into Slack (To, Cc, Bcc) into validated addresses.

Users paste addresses from anywhere, so the parser is lenient about separators and forms but
precise about the result: every token ends up either as a validated :class:`Address` or,
exactly as typed, in :attr:`AddressList.invalid`, so the caller can say what was wrong.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

from email_validator import validate_email

__all__ = [
    "Address",
    "AddressList",
    "InvalidAddress",
    "bare_address",
    "count_recipients",
    "parse_address_list",
    "parse_single_address",
    "remove_invisible",
    "smtputf8_required",
]

_HARD_SEPARATORS = frozenset(",;")
# RFC 5322 specials: a display name containing any of them must be sent as a quoted string.
_SPECIALS = frozenset('()<>[]:;@\\,."')
# Slack escapes exactly these three characters in slash-command and message text.
_SLACK_ENTITY = re.compile(r"&(amp|lt|gt);")
_SLACK_ENTITY_CHARS = {"amp": "&", "lt": "<", "gt": ">"}
_MAILTO = "mailto:"
# Bidi embeddings, overrides and isolates reorder what a reader sees ("Invoice \u202efdp.exe"
# reads "Invoice exe.pdf"); zero-width characters hide inside words ("pay\u200bpal"). Both are
# invisible, so removing them changes nothing a person meant to write. (Zero-width joiners
# also glue emoji sequences: a family emoji falls apart into its people, which still reads.)
_INVISIBLE = dict.fromkeys(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF]
)


class InvalidAddress(ValueError):
    """Raised by :func:`parse_single_address`; ``value`` is the offending text as typed."""

    def __init__(self, value: str) -> None:
        super().__init__(f"not a valid e-mail address: {value!r}")
        self.value = value


@dataclass(frozen=True, slots=True)
class Address:
    """A validated mailbox; ``email`` is normalized by email-validator."""

    email: str
    name: str | None = None

    def formatted(self) -> str:
        """Return ``Name <email>`` (name quoted when RFC 5322 requires it) or the bare e-mail."""
        name = _canonical_name(self.name) if self.name else None
        if not name:
            return self.email
        if any(ch in _SPECIALS for ch in name):
            escaped = name.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{escaped}" <{self.email}>'
        return f"{name} <{self.email}>"


@dataclass(frozen=True, slots=True)
class AddressList:
    """Result of :func:`parse_address_list`."""

    addresses: tuple[Address, ...]
    invalid: tuple[str, ...]


@dataclass(slots=True)
class _Lexeme:
    kind: str  # "text", "quoted", "angle" or "sep"
    value: str  # text as typed; unescaped content for "quoted"; inner address for "angle"
    start: int
    end: int
    space_before: bool
    autolink: bool = False  # Slack's own <mailto:x|x> link: the user typed a bare address


def parse_address_list(text: str | None, *, slack_escaped: bool = False) -> AddressList:
    """Split and validate a free-form recipient list; never raises.

    Separators are commas, semicolons and any whitespace. Accepted forms: ``a@b.c``,
    ``Name <a@b.c>``, ``"Doe, John" <a@b.c>``, ``<a@b.c>``, ``mailto:a@b.c`` and Slack's
    ``<mailto:a@b.c|a@b.c>``. Pass ``slack_escaped=True`` for slash-command text, where
    Slack sends ``&``, ``<`` and ``>`` as ``&amp;``, ``&lt;`` and ``&gt;``. Duplicates (compared
    case-insensitively) keep their first occurrence.
    """
    if not text or not isinstance(text, str):
        return AddressList((), ())
    if slack_escaped:
        text = _SLACK_ENTITY.sub(lambda m: _SLACK_ENTITY_CHARS[m.group(1)], text)
    addresses: list[Address] = []
    invalid: list[str] = []
    seen_emails: set[str] = set()
    seen_invalid: set[str] = set()

    def add_invalid(raw: str) -> None:
        raw = raw.strip()
        if raw and raw not in seen_invalid:
            seen_invalid.add(raw)
            invalid.append(raw)

    def add(candidate: str, name: str | None, raw: str) -> None:
        email = _validate(candidate)
        if email is None:
            add_invalid(raw)
            return
        key = email.casefold()
        if key not in seen_emails:
            seen_emails.add(key)
            addresses.append(Address(email, _canonical_name(name) if name else None))

    pending: list[_Lexeme] = []

    def flush_pending() -> None:
        if pending:
            add_invalid(text[pending[0].start : pending[-1].end])
            pending.clear()

    for lex in _lex(text):
        if lex.kind == "sep":
            flush_pending()
        elif lex.kind == "angle":
            if lex.autolink:
                flush_pending()
                add(lex.value, None, text[lex.start : lex.end])
            else:
                name = _join_name(pending) if pending else None
                start = pending[0].start if pending else lex.start
                pending.clear()
                add(lex.value, name, text[start : lex.end])
        elif lex.kind == "quoted":
            pending.append(lex)
        elif "@" in lex.value or lex.value.lower().startswith(_MAILTO):
            if pending and not lex.space_before:
                # Glued to what precedes it (e.g. '"john"@x.com'): report the chunk whole.
                glued = len(pending) - 1
                while glued > 0 and not pending[glued].space_before:
                    glued -= 1
                start = pending[glued].start
                del pending[glued:]
                flush_pending()
                add_invalid(text[start : lex.end])
                continue
            flush_pending()
            add(_strip_mailto(lex.value), None, lex.value)
        elif any(ch in '<>"' for ch in lex.value):
            # Leftovers of an unclosed quote or bracket are never part of a name.
            pending.append(lex)
            flush_pending()
        else:
            pending.append(lex)
    flush_pending()
    return AddressList(tuple(addresses), tuple(invalid))


def parse_single_address(text: str) -> Address:
    """Parse exactly one address (bare or ``Name <addr>``); raise :class:`InvalidAddress`."""
    result = parse_address_list(text)
    if len(result.addresses) == 1 and not result.invalid:
        return result.addresses[0]
    if result.invalid:
        raise InvalidAddress(result.invalid[0])
    raise InvalidAddress(text.strip() if isinstance(text, str) else "")


def bare_address(text: str) -> str:
    """The e-mail alone of ``Name <addr>`` (what Bitrix24's to/cc/bcc take); unparsable text as is."""
    try:
        return parse_single_address(text).email
    except InvalidAddress:
        return text


def count_recipients(*lists: AddressList) -> int:
    """Count distinct e-mail addresses (case-insensitively) across all lists."""
    return len({a.email.casefold() for lst in lists for a in lst.addresses})


def _validate(candidate: str) -> str | None:
    if not candidate or "@" not in candidate:
        return None
    try:
        # Never check deliverability: that means DNS lookups on the request path.
        result = validate_email(candidate, check_deliverability=False)
    except ValueError:  # EmailNotValidError, and any UnicodeError from IDNA codecs
        return None
    return result.normalized


def _strip_mailto(value: str) -> str:
    if not value.lower().startswith(_MAILTO):
        return value
    # A mailto: URL may carry ?subject=… and percent-escapes; only the address matters.
    return unquote(value[len(_MAILTO) :].split("?", 1)[0])


def remove_invisible(text: str) -> str:
    """`text` without bidirectional controls and zero-width characters (see _INVISIBLE)."""
    return text.translate(_INVISIBLE)


def smtputf8_required(email: str) -> bool:
    """True when the local part is not ASCII: only servers speaking SMTPUTF8 accept it (an
    international domain is fine, it travels as punycode)."""
    return not email.rpartition("@")[0].isascii()


def _canonical_name(name: str) -> str:
    # Control characters (CR/LF above all) must never reach a mail header.
    name = remove_invisible(name)
    cleaned = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in name)
    return " ".join(cleaned.split())


def _join_name(parts: list[_Lexeme]) -> str | None:
    pieces: list[str] = []
    for i, lex in enumerate(parts):
        if i and lex.space_before:
            pieces.append(" ")
        pieces.append(lex.value)
    name = _canonical_name("".join(pieces))
    return name or None


def _lex(text: str) -> list[_Lexeme]:
    """Split text into words, quoted strings, angle-bracket addresses and hard separators.

    Every scan either consumes what it looked at or stops at a character that starts the next
    lexeme, so the whole pass is linear in the input length.
    """
    out: list[_Lexeme] = []
    n = len(text)
    i = 0
    space_before = False
    # A failed quote scan ran to the end of its line; quotes before that point cannot close
    # either (short of escape-alignment oddities), and re-scanning them would be quadratic.
    quote_fail_until = -1
    while i < n:
        ch = text[i]
        if ch in _HARD_SEPARATORS:
            out.append(_Lexeme("sep", ch, i, i + 1, space_before))
            space_before = False
            i += 1
            continue
        if ch.isspace():
            space_before = True
            i += 1
            continue
        if ch == '"' and i >= quote_fail_until:
            closed, end = _scan_quoted(text, i)
            if not closed:
                quote_fail_until = end
            else:
                content = text[i + 1 : end - 1]
                value = re.sub(r"\\(.)", r"\1", content, flags=re.DOTALL)
                out.append(_Lexeme("quoted", value, i, end, space_before))
                space_before = False
                i = end
                continue
        elif ch == "<":
            angle = _scan_angle(text, i)
            if angle is not None:
                end, inner, autolink = angle
                out.append(_Lexeme("angle", inner, i, end, space_before, autolink))
                space_before = False
                i = end
                continue
        # A plain word; a '"' or '<' that did not open anything is kept as part of it. Every
        # '<' of a run fails the same way as the first, so the run is taken whole.
        j = i + 1
        while ch == "<" and j < n and text[j] == "<":
            j += 1
        while j < n:
            c = text[j]
            if c in _HARD_SEPARATORS or c.isspace() or c == "<":
                break
            if c == '"' and j >= quote_fail_until:
                break
            j += 1
        out.append(_Lexeme("text", text[i:j], i, j, space_before))
        space_before = False
        i = j
    return out


def _scan_quoted(text: str, start: int) -> tuple[bool, int]:
    """Return (True, index after the closing quote) or (False, where the scan gave up)."""
    j = start + 1
    n = len(text)
    while j < n:
        c = text[j]
        if c == "\\" and j + 1 < n and text[j + 1] not in "\r\n":
            j += 2
            continue
        if c in "\r\n":
            return False, j
        if c == '"':
            return True, j + 1
        j += 1
    return False, n


def _scan_angle(text: str, start: int) -> tuple[int, str, bool] | None:
    """Scan ``<addr>``, ``<mailto:addr|label>`` or doubled ``<<…>>``; None if not closed.

    Doubled brackets come from slash-command text where the user typed ``<a@b.c>`` and Slack
    auto-linked the address inside: ``&lt;<mailto:a@b.c|a@b.c>&gt;``.
    """
    n = len(text)
    j = start
    while j < n and text[j] == "<":
        j += 1
    depth = j - start
    content_start = j
    while j < n:
        c = text[j]
        if c == ">":
            break
        if c.isspace() or c in _HARD_SEPARATORS or c in '"<':
            return None
        j += 1
    else:
        return None
    content = text[content_start:j]
    j += 1
    closers = 1
    while closers < depth and j < n and text[j] == ">":
        closers += 1
        j += 1
    inner = content
    autolink = False
    if inner.lower().startswith(_MAILTO) and "|" in inner:
        target, label = inner.split("|", 1)
        inner = target
        autolink = depth == 1 and _strip_mailto(target).casefold() == label.casefold()
    return j, _strip_mailto(inner), autolink
