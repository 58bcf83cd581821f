"""b24mail against bare Bolt and the raw HTTP calls, in one run (GitHub issue 7).

Run: ``python -m bench.app_bench`` (``python -m bench`` runs it with the other benchmarks).
Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust; override with
B24MAIL_TEST_PG_ADMIN_URL). Takes a few minutes; prints a table, then five summary lines.

Everything runs on 127.0.0.1 and every figure is compared with a baseline measured in the same
run, because the machine is shared:

- ack: `/b24mail help` (a linked user) to `b24mail serve` (subprocess, HTTP mode, SQLite)
  against a bare Bolt AsyncApp that only acks (subprocess, `bench._bare_bolt`, same uvicorn
  settings), one raw keep-alive HTTP/1.1 load generator for both, alternating rounds.
- submit: compose submissions to that `b24mail serve` (its worker running), the ack including
  the outbox write; then again while the portal answers after 5 s with 100 e-mails queued.
- delivery: ack → e-mail at a zero-latency fake portal (time.time() on both sides), one e-mail
  at a time: `b24mail serve` alone on SQLite (the worker is woken in-process), and
  `b24mail serve` (B24MAIL_RUN_WORKER=false) + `b24mail worker` on PostgreSQL (LISTEN/NOTIFY).
- outbox: see bench/outbox.py (4 workers in this process, PostgreSQL, vs the raw calls).
- memory: VmRSS of a fresh `b24mail serve` (SQLite) idle, after 1 000 and 5 000 sends.

The fake Slack and the fake portal (no rate limit) run as their own processes; the app's own
Bitrix24 limiter is raised to match (BITRIX24_RATE), everything else is the default.
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet

from bench import ack, outbox, submit
from bench._support import (
    HOST,
    Fakes,
    Proc,
    app_env,
    fakes,
    free_port,
    link_users,
    ms,
    percentile,
    pg_database,
    started,
    tempdir,
    user_id,
    wait_http,
)
from bot.store.listen import asyncpg_dsn

USERS = 40


@contextmanager
def serve(
    f: Fakes, logdir: Path, name: str, database_url: str, **env: str
) -> Iterator[tuple[Proc, int]]:
    port = free_port()
    with started(
        name, ["-m", "bot", "serve"], env=app_env(f, database_url, port, **env), logdir=logdir
    ) as proc:
        wait_http(proc, f"http://{HOST}:{port}/healthz", timeout=60)
        yield proc, port


def _phase(name: str) -> None:
    print(f"-- {name}", file=sys.stderr, flush=True)


async def _link(port: int, f: Fakes) -> dict[str, str]:
    return await link_users(port, f, USERS)


def run() -> tuple[list[tuple[str, str]], list[str]]:
    rows: list[tuple[str, str]] = []
    summary: dict[str, str] = {}
    key = Fernet.generate_key().decode()
    with tempdir() as tmp, fakes(tmp) as f:
        sqlite = f"sqlite:///{tmp / 'b24mail.db'}"
        common = {"B24MAIL_SECRET_KEYS": key}

        _phase("ack, submit and one-process delivery: b24mail serve on SQLite vs bare Bolt")
        with serve(f, tmp, "serve-sqlite", sqlite, **common) as (proc, port):
            bolt_port = free_port()
            with started(
                "bare-bolt",
                ["-m", "bench._bare_bolt"],
                env=app_env(f, sqlite, bolt_port),
                logdir=tmp,
            ) as bolt:
                wait_http(bolt, f"http://{HOST}:{bolt_port}/healthz")
                senders = asyncio.run(_link(port, f))
                result = asyncio.run(
                    ack.measure(
                        ours_port=port,
                        bolt_port=bolt_port,
                        slack_api_url=f.slack_api_url,
                        user=user_id(1),
                    )
                )
            rows += result.rows()
            summary["ack"] = result.summary()
            pending = submit.sqlite_pending(str(tmp / "b24mail.db"))
            submitter = submit.Submitter(port, senders, label="submit")
            submitted = asyncio.run(submit.measure_submit(submitter, f, pending))
            rows += submitted.rows()
            summary["submit"] = submitted.summary()
            one = asyncio.run(submit.measure_delivery(submitter, f, pending))
            proc.check_alive()

        _phase("delivery: b24mail serve + b24mail worker on PostgreSQL")
        with pg_database() as pg_url:
            multi_env = {**common, "B24MAIL_RUN_WORKER": "false"}
            worker_env = app_env(f, pg_url, free_port(), **common)
            with (
                serve(f, tmp, "serve-pg", pg_url, **multi_env) as (proc, port),
                started("worker-pg", ["-m", "bot", "worker"], env=worker_env, logdir=tmp) as worker,
            ):
                senders = asyncio.run(_link(port, f))
                pending = submit.postgres_pending(asyncpg_dsn(pg_url))
                submitter = submit.Submitter(port, senders, label="multi")
                multi = asyncio.run(submit.measure_delivery(submitter, f, pending))
                worker.check_alive()
        for label, samples in (
            ("one process, SQLite", one),
            ("serve + worker, PostgreSQL", multi),
        ):
            rows.append(
                (
                    f"delivery ack→portal, {label} (n={len(samples)})",
                    f"p50 {ms(percentile(samples, 0.5)):.1f} ms  "
                    f"p99 {ms(percentile(samples, 0.99)):.1f} ms",
                )
            )
        summary["delivery"] = (
            f"delivery: one_process_p50_ms={ms(percentile(one, 0.5)):.1f} "
            f"multi_process_p50_ms={ms(percentile(multi, 0.5)):.1f}"
        )

        _phase("outbox throughput: 4 workers on PostgreSQL vs raw calls")
        with pg_database() as pg_url:
            drained = asyncio.run(outbox.measure(f, pg_url))
        rows += drained.rows()
        summary["outbox"] = drained.summary()

        _phase("memory: a fresh b24mail serve on SQLite, 5 000 sends")
        memory_db = tmp / "memory.db"
        with serve(f, tmp, "serve-memory", f"sqlite:///{memory_db}", **common) as (proc, port):
            senders = asyncio.run(_link(port, f))
            submitter = submit.Submitter(port, senders, label="memory")
            memory = asyncio.run(
                submit.measure_memory(submitter, proc, submit.sqlite_pending(str(memory_db)))
            )
        rows += memory.rows()
        summary["memory"] = memory.summary()
        failed = submitted.failed + drained.failed + memory.failed
        rows.append(("e-mails that failed (should be 0)", str(failed)))
    lines = [summary[k] for k in ("ack", "submit", "delivery", "outbox", "memory")]
    return rows, lines


def ack_only(runs: int) -> list[str]:
    """Only the ack phase, `runs` times against one `serve` + bare Bolt pair (about 70 s each)."""
    key = Fernet.generate_key().decode()
    lines = []
    with tempdir() as tmp, fakes(tmp) as f:
        sqlite = f"sqlite:///{tmp / 'b24mail.db'}"
        with serve(f, tmp, "serve-sqlite", sqlite, B24MAIL_SECRET_KEYS=key) as (_proc, port):
            bolt_port = free_port()
            with started(
                "bare-bolt",
                ["-m", "bench._bare_bolt"],
                env=app_env(f, sqlite, bolt_port),
                logdir=tmp,
            ) as bolt:
                wait_http(bolt, f"http://{HOST}:{bolt_port}/healthz")
                asyncio.run(_link(port, f))
                for _ in range(runs):
                    result = asyncio.run(
                        ack.measure(
                            ours_port=port,
                            bolt_port=bolt_port,
                            slack_api_url=f.slack_api_url,
                            user=user_id(1),
                        )
                    )
                    lines.append(result.summary())
                    print(lines[-1], flush=True)
    return lines


def main() -> None:
    if sys.argv[1:2] == ["--ack"]:
        # `python -m bench.app_bench --ack [N]`: the ack lines alone, N runs (default 3).
        ack_only(int(sys.argv[2]) if len(sys.argv) > 2 else 3)
        return
    started_at = time.monotonic()
    rows, lines = run()
    width = max(len(label) for label, _ in rows)
    print(
        f"b24mail app benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{time.monotonic() - started_at:.0f} s"
    )
    print(f"{'measurement':<{width}}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    for line in lines:
        print(line)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
