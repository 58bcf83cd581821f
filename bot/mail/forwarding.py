"""What a forward starts as: its subject (`Fwd: <subject>`, never `Fwd: Fwd:`)."""

from __future__ import annotations

import re

# "Fwd:", "FW:", "Fwd[2]:", "fw(3):", repeated: all of them collapse into one "Fwd: ".
_FORWARD_PREFIX = re.compile(r"^(?:\s*fwd?\s*(?:\[\d+\]|\(\d+\))?\s*:)+\s*", re.IGNORECASE)


def forward_subject(subject: str) -> str:
    """`Fwd: <subject>`; any run of forward prefixes becomes one."""
    rest = _FORWARD_PREFIX.sub("", subject or "").strip()
    return f"Fwd: {rest}" if rest else "Fwd:"
