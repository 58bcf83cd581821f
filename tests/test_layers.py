"""The import directions of architecture.md hold: bitrix24 is a leaf, mail knows no Slack,
store knows neither Slack nor Bitrix24."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[1] / "bot"


def imported_modules(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (BOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(BOT))] = names
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def test_bitrix24_imports_only_httpx_pydantic_and_the_standard_library() -> None:
    # httpcore is httpx's own connection layer: the leaf uses it to pin checked addresses.
    allowed = {"httpx", "httpcore", "pydantic", "__future__"} | set(sys.stdlib_module_names)
    for path, names in imported_modules("bitrix24").items():
        foreign = {n for n in names if top(n) not in allowed}
        assert not foreign, f"{path} imports {foreign}"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("mail", ("slack_bolt", "slack_sdk", "bot.slack", "starlette", "uvicorn")),
        ("store", ("slack_bolt", "slack_sdk", "bot.slack", "bot.bitrix24", "bot.mail", "httpx")),
    ],
)
def test_inner_layers_do_not_import_outer_ones(package: str, forbidden: tuple[str, ...]) -> None:
    for path, names in imported_modules(package).items():
        bad = {n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden)}
        assert not bad, f"{path} imports {bad}"
