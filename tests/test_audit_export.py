"""`b24mail audit export`: the records as CSV or JSON lines, by date and workspace, from a real
process on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store.audit import EMAIL, POLICY, AuditRepository, NewAuditRecord
from bot.store.db import create_session_factory
from tests.test_cli import clean_env, run_cli


async def _records(engine: AsyncEngine) -> None:
    repository = AuditRepository(sessions=create_session_factory(engine))

    def email(team: str, when: datetime, outcome: str, subject: str) -> NewAuditRecord:
        return NewAuditRecord(
            enterprise_id="",
            team_id=team,
            kind=EMAIL,
            actor="U0001",
            outcome=outcome,
            email_id=f"e-{team}-{subject}",
            sender="Alice <alice@corp.example>",
            to=["bob@client.example", "Иван <ivan@пример.рф>"],
            cc=["carol@client.example"],
            bcc=["dave@corp.example"],
            subject=subject,
            occurred_at=when,
        )

    await repository.append(email("T1", datetime(2025, 12, 31, 23, 59, tzinfo=UTC), "sent", "old"))
    await repository.append(email("T1", datetime(2026, 1, 2, tzinfo=UTC), "sent", "Report, Q1"))
    await repository.append(
        email("T2", datetime(2026, 1, 3, tzinfo=UTC), "failed:send_failed", "Offer")
    )
    await repository.append(
        NewAuditRecord(
            enterprise_id="",
            team_id="T1",
            kind=POLICY,
            actor="UADMIN",
            outcome="changed",
            detail={"before": {"blocked_domains": []}, "after": {"blocked_domains": ["x.example"]}},
            occurred_at=datetime(2026, 1, 4, tzinfo=UTC),
        )
    )


async def test_export_writes_csv_and_jsonl_by_date_and_team(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    await _records(engine)
    env = clean_env(DATABASE_URL=database_url)
    result = run_cli("audit", "export", "--since", "2026-01-01", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Exported 3 audit record(s)." in result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["subject"] for r in rows] == ["Report, Q1", "Offer", ""]
    first = rows[0]
    assert first["to"] == "bob@client.example; Иван <ivan@пример.рф>"
    assert (first["cc"], first["bcc"], first["outcome"]) == (
        "carol@client.example",
        "dave@corp.example",
        "sent",
    )
    assert first["occurred_at"].startswith("2026-01-02T00:00:00")
    assert json.loads(rows[2]["detail"])["after"] == {"blocked_domains": ["x.example"]}
    assert "body" not in rows[0]

    out = tmp_path / "t1.jsonl"
    result = run_cli(
        "audit",
        "export",
        "--since",
        "2025-12-01",
        "--until",
        "2026-01-03T12:00:00+00:00",
        "--team",
        "T1",
        "--format",
        "jsonl",
        "--output",
        str(out),
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["team_id"], r["subject"]) for r in lines] == [("T1", "old"), ("T1", "Report, Q1")]
    assert lines[1]["to"] == ["bob@client.example", "Иван <ivan@пример.рф>"]


def test_export_refuses_a_bad_date_with_a_clear_message(tmp_path: Path) -> None:
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path}/none.db")
    result = run_cli("audit", "export", "--since", "last tuesday", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "'last tuesday' is not a date" in result.stderr and "Traceback" not in result.stderr
    result = run_cli(
        "audit", "export", "--since", "2026-02-01", "--until", "2026-01-01", env=env, cwd=tmp_path
    )
    assert result.returncode == 2 and "--until must be after --since" in result.stderr
