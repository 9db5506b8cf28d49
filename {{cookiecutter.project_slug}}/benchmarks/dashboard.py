"""Dashboard page times at scale: `make bench-dashboard` (or `python -m benchmarks.dashboard`).

Fills a fresh database with 10,000 runtime jobs and a long history (1,000,000 runs on
PostgreSQL, 200,000 on SQLite by default; `--runs` sets it), then asks for each dashboard
page again and again, the pages in turns, through the real app, in this process, signed in
as a browser is. The time taken is the server's own: from the request reaching the app to the
last byte of its answer. Printed per page: p50, p99 and max, beside the anchor measured in the
same turns (the readiness endpoint, which reads two small tables), and the target: every
page's p99 at most 50 ms. `--database-url` measures PostgreSQL (a schema of its own is
created and dropped).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.components.backend.main import create_app
from app.components.management.service import cursor_of
from app.components.scheduler.catalog import code_jobs, sync_code_jobs
from app.core.db import create_db_engine, utcnow, write_session
from app.core.enums import ActorKind, AuditAction, CommandStatus, ExecutionStatus
from app.core.migrations import upgrade
from app.core.models import AuditEntry, Job, JobExecution
from app.core.schedule_specs import CronSpec, IntervalSpec, dump_spec
from app.core.settings import Settings
from benchmarks.commands import percentile
from benchmarks.databases import database, scheduler_runs_jobs

TARGET_P99_MS = 50.0
JOBS = 10_000
FUNCTION = "cleanup_old_records"
HISTORY_DAYS = 30
AUDIT_ENTRIES = 5_000
ANCHOR = "anchor: /health/ready"
_COLUMNS = (
    "id",
    "job_id",
    "queue",
    "scheduled_at",
    "started_at",
    "finished_at",
    "duration_ms",
    "status",
    "attempt",
    "trigger_kind",
    "error_type",
    "error_message",
    "instance_id",
    "epoch",
)


class ServerTime:
    """Times each HTTP request inside the app: from its arrival to its answer's last byte."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.last_ms = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()

        async def timed_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.last_ms = (time.perf_counter() - began) * 1000

        await self.app(scope, receive, timed_send)


def job_id(number: int) -> str:
    return f"bench_{number:05d}"


def seed(engine: Engine, settings: Settings, runs: int) -> None:
    """10,000 runtime jobs, `runs` runs spread over 30 days, and an audit log."""
    now = utcnow()
    with write_session(engine) as session:
        sync_code_jobs(session, code_jobs(), settings.timezone)
    specs = [
        dump_spec(IntervalSpec(minutes=15)),
        dump_spec(CronSpec(expression="0 * * * *")),
        dump_spec(CronSpec(expression="30 2 * * *", timezone="Europe/Paris")),
    ]
    jobs = [
        {
            "id": job_id(number),
            "origin": "runtime",
            "name": f"Bench job {number}",
            "function": FUNCTION,
            "args": "{}",
            "queue": ("critical", "default", "low")[number % 3],
            "schedule": specs[number % len(specs)],
            "code_schedule": None,
            "paused": number % 50 == 0,
            "next_run_at": now + timedelta(seconds=number * 7),
            "version": 1,
            "updated_at": now,
        }
        for number in range(JOBS)
    ]
    with engine.begin() as connection:
        connection.execute(insert(Job), jobs)
        connection.execute(insert(AuditEntry), list(_audit_entries(now)))
    naive_now = now.replace(tzinfo=None)
    step = timedelta(days=HISTORY_DAYS) / runs
    rows = (_run_row(number, naive_now - step * number) for number in range(runs))
    if engine.dialect.name == "postgresql":
        _copy_rows(engine, rows)
    else:
        _insert_rows(engine, rows)
    # As autovacuum leaves a table that has settled: statistics gathered, pages marked
    # visible (PostgreSQL then answers from an index alone where it holds what is read). A
    # checkpoint then writes out the loaded pages, which the server would otherwise be
    # flushing while the pages are timed.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("VACUUM ANALYZE"))
            try:
                connection.execute(text("CHECKPOINT"))
            except ProgrammingError:
                print(
                    "note: no CHECKPOINT (it needs a superuser or the pg_checkpoint role): "
                    "the first pages may be timed while the server writes out the load"
                )
        else:
            connection.execute(text("ANALYZE"))


def _run_row(number: int, scheduled: datetime) -> tuple[Any, ...]:
    kind = number % 100
    status = (
        ExecutionStatus.FAILED
        if kind < 3
        else ExecutionStatus.MISSED
        if kind == 3
        else ExecutionStatus.SKIPPED
        if kind == 4
        else ExecutionStatus.SUCCEEDED
    )
    ran = status in (ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED)
    failed = status is ExecutionStatus.FAILED
    return (
        f"{number:032x}",
        job_id(number % JOBS),
        ("critical", "default", "low")[number % 3],
        scheduled,
        scheduled if ran else None,
        scheduled + timedelta(milliseconds=40) if ran else None,
        40.0 if ran else None,
        status.value,
        1,
        "schedule",
        "RuntimeError" if failed else None,
        "the upstream answered 502"
        if failed
        else ("later than the grace time" if not ran else None),
        "bench",
        1,
    )


def _copy_rows(engine: Engine, rows: Iterator[tuple[Any, ...]]) -> None:
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:  # type: ignore[attr-defined]
            copy_sql = f"COPY job_executions ({', '.join(_COLUMNS)}) FROM STDIN"
            with cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()


def _insert_rows(engine: Engine, rows: Iterator[tuple[Any, ...]]) -> None:
    """SQLite: plain executemany, times in the text form SQLAlchemy stores them in."""
    placeholders = ", ".join("?" for _ in _COLUMNS)
    statement = f"INSERT INTO job_executions ({', '.join(_COLUMNS)}) VALUES ({placeholders})"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        batch: list[tuple[Any, ...]] = []
        for row in rows:
            batch.append(tuple(_sqlite_value(value) for value in row))
            if len(batch) == 10_000:
                cursor.executemany(statement, batch)
                batch = []
        cursor.executemany(statement, batch)
        raw.commit()
    finally:
        raw.close()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return value


def _audit_entries(now: datetime) -> Iterator[dict[str, Any]]:
    for number in range(AUDIT_ENTRIES):
        yield {
            "id": f"{number:032x}",
            "at": now - timedelta(minutes=number),
            "actor_kind": ActorKind.API_TOKEN,
            "actor": "operator token",
            "action": (AuditAction.PAUSE, AuditAction.RESUME)[number % 2],
            "job_id": job_id(number % JOBS),
            "before": json.dumps({"paused": number % 2 == 1}),
            "after": json.dumps({"paused": number % 2 == 0}),
            "outcome": CommandStatus.APPLIED,
            "detail": None,
            "revision": number + 1,
            "command_id": None,
        }


def pages(engine: Engine) -> dict[str, str]:
    """The pages to time, with ids and a deep cursor taken from the seeded data."""
    with engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(JobExecution)).scalar_one()
        deep = connection.execute(
            select(JobExecution.scheduled_at, JobExecution.id)
            .order_by(JobExecution.scheduled_at.desc(), JobExecution.id.desc())
            .offset(total * 9 // 10)
            .limit(1)
        ).one()
        failed = connection.execute(
            select(JobExecution.id).where(JobExecution.status == ExecutionStatus.FAILED).limit(1)
        ).scalar_one()
    busy = job_id(4242)
    return {
        "overview": "/dashboard",
        "jobs": "/dashboard/jobs",
        "jobs, search": "/dashboard/jobs?q=bench_0424",
        "jobs, paused": "/dashboard/jobs?state=paused",
        "jobs, page 150": "/dashboard/jobs?page=150",
        "job": f"/dashboard/jobs/{busy}",
        "runs": "/dashboard/executions",
        "runs, failed": "/dashboard/executions?status=failed",
        "runs, one job": f"/dashboard/executions?job={busy}",
        "runs, 90% deep": f"/dashboard/executions?before={cursor_of(deep[0], deep[1])}",
        "run": f"/dashboard/executions/{failed}",
        "audit log": "/dashboard/audit",
    }


def sign_in(client: TestClient, token: str) -> None:
    form = client.get("/dashboard/sign-in").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf is not None
    response = client.post(
        "/dashboard/sign-in", data={"csrf": csrf[1], "token": token, "next": "/dashboard"}
    )
    if response.status_code != 303:
        raise SystemExit(f"could not sign in: {response.status_code}")


def time_pages(
    client: TestClient, timer: ServerTime, paths: dict[str, str], requests: int
) -> dict[str, list[float]]:
    """Each page `requests` times, taken in turns: a moment the machine is busy with something
    else then slows every page a little instead of one page a lot."""
    times: dict[str, list[float]] = {name: [] for name in paths}
    for round_number in range(3 + requests):
        for name, path in paths.items():
            response = client.get(path)
            if response.status_code not in (200, 503):
                raise SystemExit(f"{path} answered {response.status_code}: {response.text[:300]}")
            if round_number >= 3:  # the first rounds warm the caches
                times[name].append(timer.last_ms)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL URL; by default a SQLite file")
    parser.add_argument(
        "--runs", type=int, help="history rows (default 1,000,000 on PostgreSQL, 200,000 on SQLite)"
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per page")
    args = parser.parse_args()
    scheduler_runs_jobs()
    with (
        tempfile.TemporaryDirectory() as scratch,
        database(args.database_url, Path(scratch)) as url,
    ):
        postgres = make_url(url).get_backend_name() == "postgresql"
        runs = args.runs or (1_000_000 if postgres else 200_000)
        token = "bench-token-" + "b" * 24
        settings = Settings(database_url=url, api_token=token, data_dir=Path(scratch) / "data")
        engine = create_db_engine(url)
        upgrade(engine)
        began = time.perf_counter()
        seed(engine, settings, runs)
        seeded = time.perf_counter() - began
        targets = pages(engine)
        engine.dispose()
        timer = ServerTime(create_app(settings))
        with TestClient(timer, follow_redirects=False) as client:
            sign_in(client, token)
            results = time_pages(client, timer, {ANCHOR: "/health/ready", **targets}, args.requests)
            anchor = results.pop(ANCHOR)

    name = "PostgreSQL" if postgres else "SQLite"
    print(
        f"Dashboard pages ({name}): {JOBS} jobs, {runs} runs, {AUDIT_ENTRIES} audit entries "
        f"(seeded in {seeded:.1f} s); {args.requests} requests a page, server time"
    )
    print(f"  {'page':<22} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p99/anchor':>10}")
    anchor_p99 = percentile(anchor, 0.99)
    rows = [(ANCHOR, anchor), *results.items()]
    for label, times in rows:
        p99 = percentile(times, 0.99)
        print(
            f"  {label:<22} {percentile(times, 0.5):>8.1f} {p99:>8.1f} {max(times):>8.1f} "
            f"{p99 / anchor_p99:>9.1f}x"
        )
    slowest_name, slowest = max(
        ((label, percentile(times, 0.99)) for label, times in results.items()),
        key=lambda item: item[1],
    )
    verdict = "met" if slowest <= TARGET_P99_MS else "MISSED"
    print(
        f"  target: every page's p99 <= {TARGET_P99_MS:g} ms: {verdict} "
        f"(slowest: {slowest_name}, {slowest:.1f} ms)"
    )


if __name__ == "__main__":
    main()
