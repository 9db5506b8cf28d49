"""Scheduler benchmark: `make bench` (or `python -m benchmarks.scheduler --jobs 5000`).

Each scenario runs in a fresh process on a fresh SQLite file, so one cannot warm or bloat the
next. Burst: N one-off jobs fall due within one second; lateness is each run's start minus its
due time. The project's scheduler (write-behind store, history recorded) is measured beside raw
APScheduler with its MemoryJobStore (the floor) and with its stock SQLAlchemyJobStore. Then,
for the project's scheduler only: firing lateness while 10,000 jobs sit in the store and the
command consumer polls for commands, and the process's memory with those jobs loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

RAW_SCENARIOS = ("apscheduler-memory", "apscheduler-sqlalchemy")
WINDOW_SECONDS = 1.0
IDLE_SECONDS = 5.0
IDLE_PERIOD_SECONDS = 0.05
lateness_ms: list[float] = []


def record(due: float) -> None:
    lateness_ms.append((time.time() - due) * 1000)


async def record_async(due: float) -> None:
    record(due)


async def noop() -> None:
    """The project's benchmark job: nothing, so only the scheduler is measured."""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def wait_for_count(count: int, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(lateness_ms) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def raw_burst(scenario: str, jobs: int, database: Path) -> dict[str, Any]:
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    store = (
        MemoryJobStore()
        if scenario == "apscheduler-memory"
        else SQLAlchemyJobStore(url=f"sqlite:///{database}")
    )
    scheduler = AsyncIOScheduler(jobstores={"default": store}, timezone=UTC)
    scheduler.start(paused=True)
    # Adding is not what is measured: time it on a small batch, then leave room for all.
    probe = time.perf_counter()
    for i in range(min(100, jobs)):
        scheduler.add_job(
            record_async,
            "date",
            run_date=datetime(2100, 1, 1, tzinfo=UTC),
            args=[0.0],
            id=f"probe-{i}",
        )
    per_job = (time.perf_counter() - probe) / min(100, jobs)
    scheduler.remove_all_jobs()
    start = time.time() + per_job * jobs * 1.5 + 1.0
    for i in range(jobs):
        due = start + WINDOW_SECONDS * i / jobs
        scheduler.add_job(
            record_async,
            "date",
            run_date=datetime.fromtimestamp(due, UTC),
            args=[due],
            id=f"job-{i}",
            misfire_grace_time=None,
        )
    scheduler.resume()
    await wait_for_count(len(lateness_ms), jobs, timeout=max(60, start - time.time() + 60))
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0)
    return {"ran": len(lateness_ms), "lateness_ms": lateness_ms, "history_rows": None}


async def project_burst(jobs: int, database: Path) -> dict[str, Any]:
    from sqlalchemy import func, select

    from app.components.scheduler import jobs as job_list
    from app.components.scheduler import main
    from app.components.scheduler.definition import ScheduledJob
    from app.components.scheduler.execution import current_runtime, execute
    from app.components.scheduler.runner import tune_for_latency
    from app.core.db import create_db_engine, session_scope
    from app.core.enums import ExecutionStatus
    from app.core.migrations import upgrade
    from app.core.models import JobExecution
    from app.core.schedules import Interval
    from app.core.settings import Settings

    settings = Settings(database_url=f"sqlite:///{database}", _env_file=None)
    engine = create_db_engine(settings.database_url)
    upgrade(engine)
    # One registered function; the burst is N one-off runs of it, as retries and manual runs are.
    # Every one-off run belongs to this job; they may overlap, as separate jobs would.
    bench_job = ScheduledJob(
        id="bench", name="Bench", func=noop, schedule=Interval(days=1), max_instances=jobs
    )
    job_list.JOBS = (bench_job,)
    scheduler = main.create_scheduler(settings, engine)
    scheduler.start(paused=True)
    start = time.time() + 2.0
    for i in range(jobs):
        due = start + WINDOW_SECONDS * i / jobs
        store_id = f"bench-{i}"
        scheduler.add_job(
            execute,
            "date",
            run_date=datetime.fromtimestamp(due, UTC),
            id=store_id,
            kwargs={"job_id": "bench", "store_id": store_id},
            misfire_grace_time=None,
        )
    # Everything added is committed before the window opens, so only the burst is measured.
    await asyncio.to_thread(scheduler._lookup_jobstore("default").flush)
    tune_for_latency()
    scheduler.resume()
    recorder = current_runtime().recorder

    def succeeded() -> int:
        # Runs in a thread: waiting on the database here must not stall the loop being measured.
        recorder.flush(timeout=5)
        with session_scope(engine) as session:
            query = select(func.count()).where(JobExecution.status == ExecutionStatus.SUCCEEDED)
            return session.scalar(query) or 0

    deadline = time.monotonic() + 60 + (start - time.time())
    while time.monotonic() < deadline and await asyncio.to_thread(succeeded) < jobs:
        await asyncio.sleep(0.25)
    with session_scope(engine) as session:
        rows = session.execute(
            select(JobExecution.started_at, JobExecution.scheduled_at).where(
                JobExecution.job_id == "bench"
            )
        ).all()
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0.1)
    late = [(s - d).total_seconds() * 1000 for s, d in rows if s is not None]
    return {"ran": len(late), "lateness_ms": late, "history_rows": len(rows)}


async def project_idle(stored: int, database: Path) -> dict[str, Any]:
    from sqlalchemy import select

    from app.components.scheduler import jobs as job_list
    from app.components.scheduler import main
    from app.components.scheduler.consumer import CommandConsumer
    from app.components.scheduler.control import CommandHandler
    from app.components.scheduler.definition import ScheduledJob
    from app.components.scheduler.execution import current_runtime, execute
    from app.components.scheduler.runner import tune_for_latency
    from app.core.db import create_db_engine, session_scope
    from app.core.migrations import upgrade
    from app.core.models import JobExecution
    from app.core.schedules import Interval
    from app.core.settings import Settings

    settings = Settings(database_url=f"sqlite:///{database}", _env_file=None)
    engine = create_db_engine(settings.database_url)
    upgrade(engine)
    probe = ScheduledJob(
        id="probe",
        name="Probe",
        func=noop,
        schedule=Interval(seconds=IDLE_PERIOD_SECONDS),
        max_instances=10,
    )
    job_list.JOBS = (probe,)
    scheduler = main.create_scheduler(settings, engine)
    scheduler.start(paused=True)
    far = datetime.now(UTC) + timedelta(days=30)
    for i in range(stored):
        scheduler.add_job(
            execute,
            "date",
            run_date=far,
            id=f"idle-{i}",
            kwargs={"job_id": "probe", "store_id": f"idle-{i}"},
        )
    await asyncio.to_thread(scheduler._lookup_jobstore("default").flush, 60)
    # The command consumer polls the database meanwhile, as in the real process.
    runtime = current_runtime()
    consumer = CommandConsumer(
        engine,
        asyncio.get_running_loop(),
        CommandHandler(runtime),
        runtime.flush,
        settings.command_poll_seconds,
    )
    consumer.start()
    tune_for_latency()
    memory = rss_mb()
    scheduler.resume()
    await asyncio.sleep(IDLE_SECONDS)
    await asyncio.to_thread(consumer.stop)
    scheduler.shutdown(wait=False)
    await asyncio.sleep(0.1)
    current_runtime().recorder.flush()
    with session_scope(engine) as session:
        rows = session.execute(select(JobExecution.started_at, JobExecution.scheduled_at)).all()
    late = [(s - d).total_seconds() * 1000 for s, d in rows if s is not None]
    return {"ran": len(late), "lateness_ms": late, "rss_mb": round(memory, 1), "stored": stored}


def run_scenario(scenario: str, size: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        database = Path(scratch) / "bench.db"
        began = time.perf_counter()
        if scenario in RAW_SCENARIOS:
            result = asyncio.run(raw_burst(scenario, size, database))
        elif scenario == "project":
            result = asyncio.run(project_burst(size, database))
        else:
            result = asyncio.run(project_idle(size, database))
        result["seconds"] = round(time.perf_counter() - began, 1)
        late = result.pop("lateness_ms")
        result.update(
            p50_ms=round(percentile(late, 0.50), 2),
            p99_ms=round(percentile(late, 0.99), 2),
            max_ms=round(max(late), 2) if late else None,
            mean_ms=round(statistics.fmean(late), 2) if late else None,
        )
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="one-off jobs in the burst")
    parser.add_argument("--stored", type=int, default=10000, help="jobs stored for the idle run")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario, args.size)))
        return

    def child(scenario: str, size: int) -> dict[str, Any]:
        command = [sys.executable, "-m", "benchmarks.scheduler"]
        output = subprocess.run(
            [*command, "--scenario", scenario, "--size", str(size)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        if output.returncode != 0:
            print(f"scenario {scenario} failed:\n{output.stderr[-3000:]}", file=sys.stderr)
            raise SystemExit(1)
        return dict(json.loads(output.stdout.strip().splitlines()[-1]))

    print(f"Burst: {args.jobs} one-off jobs due within {WINDOW_SECONDS:g} s (SQLite file)")
    header = f"{'scheduler':<26}{'ran':>7}{'history':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    print(header)
    print("-" * len(header))
    for scenario in ("apscheduler-memory", "apscheduler-sqlalchemy", "project"):
        r = child(scenario, args.jobs)
        history = "-" if r["history_rows"] is None else str(r["history_rows"])
        print(
            f"{scenario:<26}{r['ran']:>7}{history:>9}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['max_ms']:>9}"
        )
    idle = child("project-idle", args.stored)
    print()
    print(
        f"Idle: {idle['stored']} jobs stored, a probe job every {IDLE_PERIOD_SECONDS:g} s "
        f"for {IDLE_SECONDS:g} s"
    )
    print(
        f"  runs {idle['ran']}, lateness p50 {idle['p50_ms']} ms, p99 {idle['p99_ms']} ms, "
        f"max {idle['max_ms']} ms"
    )
    print(f"  scheduler process memory (RSS) with {idle['stored']} jobs: {idle['rss_mb']} MB")


if __name__ == "__main__":
    main()
