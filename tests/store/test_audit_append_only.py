"""The audit log is append-only: the code has no path that updates an audit record, and
deletes them only for retention and for a workspace's removal."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[2] / "bot"
ALLOWED_DELETES = {("store/audit.py", "prune"), ("store/workspace.py", "delete_workspace")}


def _writes_to(model: str) -> set[tuple[str, str, str]]:
    """(file, enclosing function, update|delete) for every update(Model)/delete(Model) call."""
    found: set[tuple[str, str, str]] = set()
    for path in BOT.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in {"update", "delete"}
                    and any(isinstance(a, ast.Name) and a.id == model for a in node.args)
                ):
                    relative = str(path.relative_to(BOT))
                    found.add((relative, function.name, node.func.id))
    return found


def test_audit_records_are_never_updated_and_deleted_only_for_retention_and_uninstall() -> None:
    writes = _writes_to("AuditRecord")
    assert {w for w in writes if w[2] == "update"} == set()
    assert {(f, fn) for f, fn, kind in writes if kind == "delete"} == ALLOWED_DELETES


def test_the_check_sees_the_writes_that_exist() -> None:
    """The scan finds real statements (it would pass vacuously if it found none)."""
    assert ("store/audit.py", "claim_posts", "update") in _writes_to("AuditPost")
