"""Parsing the text after /b24mail into a subcommand and its argument."""

from __future__ import annotations

from dataclasses import dataclass

SUBCOMMANDS = frozenset(
    {
        "send",
        "connect",
        "disconnect",
        "status",
        "help",
        "history",
        "inbox",
        "lang",
        "notify",
        "scheduled",
        "drafts",
        "signature",
        "templates",
    }
)
ALIASES = {"compose": "send", "new": "send", "link": "connect", "unlink": "disconnect", "?": "help"}
MAX_TEXT = 4000


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # one of SUBCOMMANDS, or "unknown"
    argument: str  # the rest of the text, stripped
    raw_name: str = ""  # what the user typed as the subcommand (for "unknown" help)


def parse_command_text(text: str | None) -> Command:
    """`""` → send; `send a@b.c` → send with argument; unknown words → unknown. Never raises."""
    text = (text or "")[:MAX_TEXT].strip()
    if not text:
        return Command(name="send", argument="")
    head, _, rest = text.partition(" ")
    # Slack may pass new lines or tabs after the subcommand; split on any whitespace.
    head_parts = head.split(maxsplit=1)
    word = head_parts[0] if head_parts else ""
    if len(head_parts) > 1:
        rest = head_parts[1] + (" " + rest if rest else "")
    name = ALIASES.get(word.lower(), word.lower())
    if name in SUBCOMMANDS:
        return Command(name=name, argument=rest.strip(), raw_name=word)
    if "@" in word:
        # `/b24mail anna@example.com` is read as "send to anna".
        return Command(name="send", argument=text)
    return Command(name="unknown", argument=rest.strip(), raw_name=word[:40])
