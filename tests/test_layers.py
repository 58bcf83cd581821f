"""The import rules of docs/architecture.md hold, and the checker that says so can fail.

Relative imports are resolved to the absolute module they name (`from ..slack import wording`
inside bot/bitrix24 is `bot.slack.wording`). Imports under `if TYPE_CHECKING:` never run, so
the rules about what runs (no cycle between bot/slack and the wiring) leave them out; the rules
about what a layer may know at all count them too.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

BOT = Path(__file__).resolve().parents[1] / "bot"

# The modules that wire layers together: no layer may need one of them to run.
WIRING = ("bot.app", "bot.services", "bot.cli", "bot.runtime", "bot.worker", "bot.web")
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Import:
    """One module named by an import statement, resolved to its absolute name."""

    module: str
    line: int
    runtime: bool  # False under `if TYPE_CHECKING:`


@dataclass(frozen=True)
class Rule:
    """What the modules under `scope` may import: nothing starting with one of `forbidden`
    (and, when `allowed` is given, nothing outside it). `runtime_only` rules leave out
    imports that run only for the type checker."""

    scope: str
    forbidden: tuple[str, ...] = ()
    allowed: frozenset[str] | None = None
    runtime_only: bool = False
    why: str = ""


RULES = (
    Rule(
        "bot.bitrix24",
        # httpcore is httpx's own connection layer: the leaf uses it to pin checked addresses.
        allowed=STDLIB | {"httpx", "httpcore", "pydantic", "bot.bitrix24"},
        why="bitrix24 is a leaf: the standard library, httpx and pydantic only",
    ),
    Rule(
        "bot.identity",
        allowed=STDLIB,
        why="SlackUser is imported by every layer but bitrix24, so it imports nothing itself",
    ),
    Rule(
        "bot.mail",
        forbidden=("slack_bolt", "slack_sdk", "bot.slack", "starlette", "uvicorn"),
        why="mail knows no Slack",
    ),
    Rule(
        "bot.store",
        forbidden=("slack_bolt", "slack_sdk", "bot.slack", "bot.bitrix24", "bot.mail", "httpx"),
        why="store knows neither Slack, nor Bitrix24, nor mail",
    ),
    *(
        Rule(
            layer,
            forbidden=WIRING,
            runtime_only=True,
            why="layers do not need the wiring to run (bot/services.py imports bot/slack)",
        )
        for layer in ("bot.slack", "bot.mail", "bot.store", "bot.bitrix24", "bot.identity")
    ),
)


def module_name(root: Path, path: Path) -> str:
    """`bot.slack.wording` for <root>/bot/slack/wording/__init__.py or …/wording.py."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(root: Path, path: Path) -> list[Import]:
    """Every import in a file, relative ones resolved, each marked run time or type-only."""
    module = module_name(root, path)
    # The package a relative import is relative to: the module itself for an __init__.py.
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, runtime: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, runtime)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, runtime) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(package, node.module, node.level, path, node.lineno)
            found.append(Import(base, node.lineno, runtime))
            # `from .. import slack` names the module bot.slack, not only the package bot.
            found.extend(
                Import(f"{base}.{alias.name}", node.lineno, runtime)
                for alias in node.names
                if alias.name != "*"
            )
        for child in ast.iter_child_nodes(node):
            visit(child, runtime)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), True)
    return found


def _absolute(package: str, name: str | None, level: int, path: Path, line: int) -> str:
    if level == 0:
        return name or ""
    parts = package.split(".") if package else []
    if level - 1 > len(parts) - 1:
        raise ValueError(f"{path}:{line}: relative import beyond the top-level package")
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(root: Path, rules: tuple[Rule, ...] = RULES) -> list[str]:
    """Every import under `root` (the folder holding the `bot` package) that breaks a rule."""
    found: list[str] = []
    for path in sorted((root / "bot").rglob("*.py")):
        module = module_name(root, path)
        imports = imports_of(root, path)
        for rule in rules:
            if not _within(module, rule.scope):
                continue
            for imp in imports:
                if rule.runtime_only and not imp.runtime:
                    continue
                forbidden = any(_within(imp.module, f) for f in rule.forbidden)
                outside = rule.allowed is not None and not any(
                    _within(imp.module, a) for a in rule.allowed
                )
                if forbidden or outside:
                    where = path.relative_to(root)
                    found.append(f"{where}:{imp.line} imports {imp.module} ({rule.why})")
    return found


def test_the_bot_package_keeps_its_import_rules() -> None:
    assert violations(BOT.parent) == []


def test_every_layer_of_the_rules_exists() -> None:
    """A renamed package must not turn its rules into rules about nothing."""
    for rule in RULES:
        dotted = rule.scope.split(".")
        folder = BOT.parent.joinpath(*dotted)
        assert folder.is_dir() or folder.with_suffix(".py").is_file(), rule.scope


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return root


_CLEAN = {
    "bot/__init__.py": "",
    "bot/services.py": "from bot.slack import wording\n",
    "bot/identity.py": "from dataclasses import dataclass\n",
    "bot/bitrix24/__init__.py": "from .client import Client\n",
    "bot/bitrix24/client.py": "import httpx\nfrom . import errors\n",
    "bot/bitrix24/errors.py": "",
    "bot/mail/__init__.py": "",
    "bot/mail/sending.py": "from ..identity import SlackUser\nfrom ..store import links\n",
    "bot/store/__init__.py": "",
    "bot/store/links.py": "from bot.identity import SlackUser\n",
    "bot/slack/__init__.py": "",
    "bot/slack/wording.py": "",
    "bot/slack/listeners/__init__.py": (
        "from typing import TYPE_CHECKING\n"
        "from ..wording import texts\n"
        "if TYPE_CHECKING:\n"
        "    from ...services import Services\n"
    ),
}


def test_a_clean_tree_passes_and_type_only_imports_do_not_count_at_run_time(
    tmp_path: Path,
) -> None:
    assert violations(_tree(tmp_path, _CLEAN)) == []


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("bot/bitrix24/client.py", "from ..slack import wording\n", "bot.slack"),
        ("bot/bitrix24/client.py", "from .. import slack\n", "bot.slack"),
        ("bot/bitrix24/client.py", "from ..identity import SlackUser\n", "bot.identity"),
        ("bot/bitrix24/client.py", "import slack_sdk\n", "slack_sdk"),
        ("bot/mail/sending.py", "from ..slack.wording import texts\n", "bot.slack.wording"),
        ("bot/mail/sending.py", "def f():\n    from bot.slack import wording\n", "bot.slack"),
        ("bot/store/links.py", "from ..mail import sending\n", "bot.mail"),
        ("bot/store/links.py", "from ..bitrix24.errors import E\n", "bot.bitrix24"),
        ("bot/identity.py", "from .store import links\n", "bot.store"),
        ("bot/slack/listeners/__init__.py", "from ...services import Services\n", "bot.services"),
        (
            "bot/slack/listeners/__init__.py",
            "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    from bot import app\n",
            "bot.app",
        ),
    ],
)
def test_the_checker_reports_an_injected_import(
    tmp_path: Path, path: str, source: str, expected: str
) -> None:
    root = _tree(tmp_path, {**_CLEAN, path: source})
    found = violations(root)
    assert found, f"{source!r} in {path} passed"
    assert all(line.startswith(path) for line in found), found
    assert any(f"imports {expected}" in line for line in found), found


def test_type_only_imports_still_break_what_a_layer_may_know(tmp_path: Path) -> None:
    """mail may not know Slack even for its type hints."""
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..slack import wording\n"
    )
    found = violations(_tree(tmp_path, {**_CLEAN, "bot/mail/sending.py": source}))
    assert any("imports bot.slack" in line for line in found), found


def test_a_relative_import_above_the_top_package_is_an_error(tmp_path: Path) -> None:
    root = _tree(tmp_path, {**_CLEAN, "bot/store/links.py": "from ... import os\n"})
    with pytest.raises(ValueError, match="beyond the top-level package"):
        violations(root)
