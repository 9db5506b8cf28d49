"""Worker benchmark: `make bench-workers` (or `python -m benchmarks.workers --runs 2000`).

PostgreSQL only (`--database-url`, by default the tests' server); each scenario runs
in a schema of its own with processes of its own, started before anything is measured.

Fire to start: `--fires` one-off jobs fall due `--rate` a second, evenly spaced. The leading
scheduler queues each at its time and two worker processes take them; a run's start (its
`started_at`, written as a worker starts it) minus its scheduled time is the figure. Beside
it, measured the same way: the scheduler running the same fires itself (workers off), and raw
Procrastinate: a process defers a no-op job at each due time to two processes of bare
Procrastinate workers, and the job's `started` event minus that time is the figure.

Drain: `--runs` no-op runs are queued at once over the three queues, in the shares of their
concurrency (6/3/1), to 1, 2 and 4 worker processes already waiting; the rate is the runs
over the time from the commit that queued them to the last end. Raw Procrastinate drains as
many no-op jobs through the same layout (one Procrastinate worker per queue at that queue's
concurrency, per process), with none of the project's code: no run rows, no start or end
transactions.

The drains run first: raw Procrastinate's drain with two workers is what the engine takes on
this machine. A fire rate above most of it cannot be kept up with on any path through the
engine (each measures its backlog), so the fires are measured again at half that drain, where
the figures show what each path adds to a run's start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, text

from app import ENV_PREFIX
from benchmarks.databases import database
from benchmarks.scheduler import percentile

TARGET_P99_MS = 25.0
TARGET_DRAIN_SHARE = 0.80
# A fire rate above this share of raw Procrastinate's two-worker drain is also measured at
# half that drain, where no path is queueing behind the engine.
WITHIN_CAPACITY = 0.8
WORKER_COUNTS = (1, 2, 4)
# The shares of the queues in a drain, as their default concurrency: 6, 3 and 1.
DRAIN_SHARES = {"critical": 0.6, "default": 0.3, "low": 0.1}
RAW_TASK = "noop"
WARM_UP_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 60.0
# The environment of the processes this benchmark starts: their role and the fires' times.
ROLE = "BENCH_WORKERS_ROLE"
FIRES_AT = "BENCH_FIRES_AT"
FIRES = "BENCH_FIRES"
RATE = "BENCH_RATE"


async def noop() -> None:
    """The runs' function: nothing, so what is measured is the path around it; a coroutine,
    as raw Procrastinate's task is, so neither pays for a thread."""


def bench_jobs() -> tuple[Any, ...]:
    """The code jobs of the processes: one per queue for the drains, and the fires."""
    from datetime import timedelta

    from app.components.scheduler.definition import ScheduledJob
    from app.core.enums import Queue
    from app.core.schedules import Interval, Once

    drain = [
        ScheduledJob(
            id=f"drain_{queue.value}",
            name=f"Drain {queue.value}",
            func=noop,
            schedule=Interval(days=365),
            queue=queue,
            max_instances=1000,
        )
        for queue in Queue
    ]
    fires = int(os.environ.get(FIRES, "0"))
    if not fires:
        return tuple(drain)
    first = datetime.fromtimestamp(float(os.environ[FIRES_AT]), UTC)
    spacing = timedelta(seconds=1 / float(os.environ[RATE]))
    return (
        *drain,
        *(
            ScheduledJob(
                id=f"fire_{n:05d}",
                name=f"Fire {n}",
                func=noop,
                schedule=Once(at=first + n * spacing),
            )
            for n in range(fires)
        ),
    )


# --- the processes ---------------------------------------------------------------------


def run_role(role: str) -> None:
    """Be one of the benchmark's processes, as ROLE says, until SIGTERM."""
    if role in ("scheduler", "worker"):
        from app.components.scheduler import jobs

        # What the tests do with monkeypatch: every reader looks the list up here.
        jobs.JOBS = bench_jobs()
        if role == "scheduler":
            from app.entrypoints.scheduler import main as run_scheduler

            run_scheduler()
        else:
            from app.entrypoints.worker import serve

            serve(None)
    elif role == "raw-worker":
        asyncio.run(raw_worker())
    elif role == "raw-defer":
        asyncio.run(raw_defer())
    else:
        raise SystemExit(f"unknown role {role!r}")


def _raw_app() -> Any:
    import procrastinate

    from app.components.worker.queue import conninfo

    url = os.environ[f"{ENV_PREFIX}DATABASE_URL"]
    connector = procrastinate.PsycopgConnector(conninfo=conninfo(url), min_size=1, max_size=12)
    app = procrastinate.App(connector=connector)

    @app.task(name=RAW_TASK)
    async def raw_noop(due: float = 0.0) -> None:
        """Nothing: Procrastinate's own path is what is measured."""

    return app


async def raw_worker() -> None:
    """Bare Procrastinate workers, one per queue at the project's concurrency, until SIGTERM."""
    from app.core.settings import get_settings

    settings = get_settings()
    app = _raw_app()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with app.open_async():
        workers = [
            asyncio.create_task(
                app.run_worker_async(
                    queues=[queue],
                    concurrency=settings.worker_concurrency(queue),
                    install_signal_handlers=False,
                    listen_notify=True,
                    fetch_job_polling_interval=settings.worker_poll_seconds,
                    delete_jobs="never",
                )
            )
            for queue in DRAIN_SHARES
        ]
        await stop.wait()
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def raw_defer() -> None:
    """Defer one raw job at each fire's due time, to the default queue."""
    app = _raw_app()
    first, rate, fires = (
        float(os.environ[FIRES_AT]),
        float(os.environ[RATE]),
        int(os.environ[FIRES]),
    )
    async with app.open_async():
        task = app.tasks[RAW_TASK].configure(queue="default")
        for n in range(fires):
            due = first + n / rate
            await asyncio.sleep(max(0.0, due - time.time()))
            await task.defer_async(due=due)


# --- the measurements ------------------------------------------------------------------


class Processes:
    """The processes of one scenario, their output in one log file, stopped at the end."""

    def __init__(self, scratch: Path, url: str) -> None:
        self.log = scratch / "processes.log"
        self.env = {
            **os.environ,
            f"{ENV_PREFIX}DATABASE_URL": url,
            f"{ENV_PREFIX}LOG_FORMAT": "json",
            # Every run logs its start and end at INFO; a warning-level log keeps the output
            # from being what is measured.
            f"{ENV_PREFIX}LOG_LEVEL": "WARNING",
            f"{ENV_PREFIX}SCHEDULER_METRICS_PORT": "0",
            # Several workers at once, each counting its runs as in production: free ports.
            f"{ENV_PREFIX}WORKER_METRICS_PORT": "0",
        }
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, role: str, count: int = 1, env: dict[str, str] | None = None) -> None:
        with self.log.open("ab") as log:
            for _ in range(count):
                self.started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "benchmarks.workers"],
                        env={**self.env, ROLE: role, **(env or {})},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

    def check(self) -> None:
        exited = [p for p in self.started if p.poll() is not None]
        if exited:
            raise BenchmarkFailed(
                f"a benchmark process exited with status {exited[0].returncode}; its log:\n"
                + self.log.read_text(errors="replace")[-3000:]
            )

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class BenchmarkFailed(Exception):
    """A scenario could not be measured; the message says why."""


@contextlib.contextmanager
def scenario(server: str) -> Iterator[tuple[Engine, Processes]]:
    from app.core.migrations import upgrade

    with tempfile.TemporaryDirectory() as scratch, database(server, Path(scratch)) as url:
        engine = create_engine(url)
        upgrade(engine)
        processes = Processes(Path(scratch), url)
        try:
            yield engine, processes
        finally:
            processes.stop()
            engine.dispose()


def wait_until(condition: Any, timeout: float, what: str, processes: Processes) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        processes.check()
        if time.monotonic() > deadline:
            raise BenchmarkFailed(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def count(engine: Engine, sql: str, **parameters: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), parameters).scalar() or 0)


def ended_runs(engine: Engine, prefix: str) -> int:
    return count(
        engine,
        "SELECT count(*) FROM job_executions WHERE job_id LIKE :prefix "
        "AND status NOT IN ('pending', 'running')",
        prefix=f"{prefix}%",
    )


def workers_serving(engine: Engine) -> int:
    return count(engine, "SELECT count(*) FROM worker_processes WHERE state = 'running'")


def raw_workers_up(engine: Engine) -> int:
    return count(engine, "SELECT count(*) FROM procrastinate_workers")


def fire_to_start(server: str, fires: int, rate: float, mode: str) -> dict[str, Any]:
    """Lateness of `fires` fires at `rate` a second: on workers, locally, or raw Procrastinate."""
    with scenario(server) as (engine, processes):
        first = time.time() + WARM_UP_SECONDS
        timing = {FIRES_AT: repr(first), FIRES: str(fires), RATE: repr(rate)}
        if mode == "raw":
            processes.start("raw-worker", 2)
            wait_until(
                lambda: raw_workers_up(engine) == 6, READY_TIMEOUT_SECONDS, "raw workers", processes
            )
            processes.start("raw-defer", env=timing)
        else:
            on = {f"{ENV_PREFIX}WORKERS_ENABLED": "true" if mode == "workers" else "false"}
            if mode == "workers":
                processes.start("worker", 2, {**on, **timing})
            processes.start("scheduler", env={**on, **timing})
            if mode == "workers":
                wait_until(
                    lambda: workers_serving(engine) == 2,
                    READY_TIMEOUT_SECONDS,
                    "workers",
                    processes,
                )
        # Ready before the first fire, or the figures would measure start-up.
        wait_until(
            lambda: _ready(engine, mode, fires), READY_TIMEOUT_SECONDS, "the scheduler", processes
        )
        if time.time() > first:
            raise BenchmarkFailed(
                f"the processes took longer than the {WARM_UP_SECONDS:g} s warm-up to start"
            )
        timeout = WARM_UP_SECONDS + fires / rate + 60
        if mode == "raw":
            wait_until(
                lambda: (
                    count(
                        engine, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
                    )
                    == fires
                ),
                timeout,
                "the raw jobs to end",
                processes,
            )
            with engine.connect() as connection:
                late = [
                    (at - due) * 1000
                    for due, at in connection.execute(
                        text(
                            "SELECT (j.args->>'due')::float8, extract(epoch FROM e.at)::float8 "
                            "FROM procrastinate_jobs j JOIN procrastinate_events e "
                            "ON e.job_id = j.id AND e.type = 'started'"
                        )
                    )
                ]
        else:
            wait_until(
                lambda: ended_runs(engine, "fire_") == fires, timeout, "the fires to end", processes
            )
            with engine.connect() as connection:
                rows = connection.execute(
                    text(
                        "SELECT status, extract(epoch FROM started_at - scheduled_at)::float8 "
                        "FROM job_executions WHERE job_id LIKE 'fire_%'"
                    )
                ).all()
            late = [seconds * 1000 for _, seconds in rows]
            statuses = {status for status, _ in rows}
            if statuses != {"succeeded"} or len(rows) != fires:
                raise BenchmarkFailed(f"{mode}: {len(rows)} rows for {fires} fires, {statuses}")
        return {
            "fires": len(late),
            "p50_ms": round(percentile(late, 0.50), 2),
            "p99_ms": round(percentile(late, 0.99), 2),
            "max_ms": round(max(late), 2),
        }


def _ready(engine: Engine, mode: str, fires: int) -> bool:
    if mode == "raw":
        return True
    # The leader has synced the code's jobs into the table and written its heartbeat.
    leading = count(
        engine,
        "SELECT count(*) FROM scheduler_instances WHERE state = 'running'",
    )
    return (
        leading == 1 and count(engine, "SELECT count(*) FROM jobs WHERE id LIKE 'fire_%'") == fires
    )


def drain(server: str, runs: int, workers: int, raw: bool) -> dict[str, Any]:
    """Runs per second of `runs` no-op runs queued at once to `workers` waiting processes."""
    with scenario(server) as (engine, processes):
        if raw:
            processes.start("raw-worker", workers)
            wait_until(
                lambda: raw_workers_up(engine) == 3 * workers,
                READY_TIMEOUT_SECONDS,
                "raw workers",
                processes,
            )
        else:
            _store_drain_jobs(engine)
            processes.start("worker", workers, {f"{ENV_PREFIX}WORKERS_ENABLED": "true"})
            wait_until(
                lambda: workers_serving(engine) == workers,
                READY_TIMEOUT_SECONDS,
                "workers",
                processes,
            )
        queued_at = _queue_drain(engine, runs, raw)
        timeout = 60 + runs / 20
        if raw:
            wait_until(
                lambda: (
                    count(
                        engine, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
                    )
                    == runs
                ),
                timeout,
                "the raw jobs to end",
                processes,
            )
            last = count_time(
                engine,
                "SELECT extract(epoch FROM max(at)) FROM procrastinate_events "
                "WHERE type = 'succeeded'",
            )
        else:
            wait_until(
                lambda: ended_runs(engine, "drain_") == runs, timeout, "the runs to end", processes
            )
            failed = count(
                engine,
                "SELECT count(*) FROM job_executions WHERE status <> 'succeeded'",
            )
            if failed:
                raise BenchmarkFailed(f"{failed} of the drain's runs did not succeed")
            last = count_time(
                engine, "SELECT extract(epoch FROM max(finished_at)) FROM job_executions"
            )
        seconds = last - queued_at
        return {"runs": runs, "seconds": round(seconds, 2), "per_second": round(runs / seconds, 1)}


def count_time(engine: Engine, sql: str) -> float:
    with engine.connect() as connection:
        return float(connection.execute(text(sql)).scalar() or 0.0)


def _store_drain_jobs(engine: Engine) -> None:
    from sqlalchemy.orm import Session

    from app.components.scheduler.catalog import sync_code_jobs

    with Session(engine) as session, session.begin():
        sync_code_jobs(session, bench_jobs(), "UTC")


def _queue_drain(engine: Engine, runs: int, raw: bool) -> float:
    """Queue `runs` runs over the queues in one transaction; returns when it committed."""
    from app.components.scheduler.dispatch import Deferral
    from app.components.scheduler.history import execution_row, queue_runs
    from app.components.worker.queue import WorkerQueue
    from app.core.db import utcnow
    from app.core.enums import ExecutionStatus, TriggerKind
    from app.core.models import JobExecution

    queues = [queue for queue, share in DRAIN_SHARES.items() for _ in range(round(runs * share))][
        :runs
    ]
    queues += ["critical"] * (runs - len(queues))
    with engine.begin() as connection:
        if raw:
            connection.exec_driver_sql(
                "SELECT procrastinate_defer_jobs_v1(ARRAY(SELECT ROW(q, %s, 0, NULL, NULL, "
                "'{}'::jsonb, NULL)::procrastinate_job_to_defer_v1 "
                "FROM unnest(CAST(%s AS TEXT[])) AS q))",
                (RAW_TASK, "{" + ",".join(queues) + "}"),
            )
        else:
            now = utcnow()
            rows = [
                execution_row(
                    f"drain_{queue}",
                    queue,
                    now,
                    ExecutionStatus.PENDING,
                    trigger_kind=TriggerKind.MANUAL,
                )
                for queue in queues
            ]
            connection.execute(insert(JobExecution), rows)
            queue_runs(
                connection, WorkerQueue(), [Deferral(row["id"], row["queue"]) for row in rows]
            )
    return time.time()


def main(argv: Sequence[str] | None = None) -> None:
    role = os.environ.get(ROLE)
    if role:
        run_role(role)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=2000, help="fires in the fire-to-start run")
    parser.add_argument("--rate", type=float, default=200.0, help="fires a second")
    parser.add_argument("--runs", type=int, default=10_000, help="runs in each drain")
    parser.add_argument("--database-url", help="a PostgreSQL server (a schema of its own)")
    args = parser.parse_args(argv)
    server = args.database_url or _tests_database()
    failures: list[str] = []
    try:
        report(args, server, failures)
    except BenchmarkFailed as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print()
    print(
        f"target: fire to start p99 <= {TARGET_P99_MS:g} ms on workers, drain >= "
        f"{TARGET_DRAIN_SHARE:.0%} of raw Procrastinate's at every worker count: ",
        end="",
    )
    print("met" if not failures else "MISSED")
    for failure in failures:
        print(f"  {failure}")


def report(args: argparse.Namespace, server: str, failures: list[str]) -> None:
    # The drains first: raw Procrastinate's drain with two workers is what the engine can
    # take on this machine, and says whether the fire rate is one it can keep up with.
    capacity = report_drains(args.runs, server, failures)
    print()
    load = f"{args.rate / capacity:.0%} of raw Procrastinate's drain with 2 workers"
    print(f"Fire to start: {args.fires} one-off jobs due {args.rate:g} a second ({load})")
    figures = report_fires(server, args.fires, args.rate, ("raw", "workers", "local"))
    if figures["workers"]["p99_ms"] > TARGET_P99_MS:
        failure = f"fire to start p99 {figures['workers']['p99_ms']} ms > {TARGET_P99_MS:g} ms"
        if figures["raw"]["p99_ms"] > TARGET_P99_MS:
            failure += f" (raw Procrastinate's own p99 at this rate: {figures['raw']['p99_ms']} ms)"
        failures.append(failure)
    if args.rate > WITHIN_CAPACITY * capacity:
        # At a rate near or above what the engine drains, every path measures its backlog;
        # at half of it, what each path adds to a run's start.
        rate = round(capacity / 2)
        print()
        print(
            f"Fire to start within the engine's reach: {args.fires} fires due {rate:g} a second "
            "(half of raw Procrastinate's drain with 2 workers)"
        )
        report_fires(server, args.fires, rate, ("raw", "workers"))


def report_fires(
    server: str, fires: int, rate: float, modes: Sequence[str]
) -> dict[str, dict[str, Any]]:
    header = f"{'path':<34}{'fires':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    print(header)
    print("-" * len(header))
    labels = {
        "raw": "raw Procrastinate (defer, start)",
        "workers": "scheduler to workers (ours)",
        "local": "scheduler runs it (workers off)",
    }
    figures = {}
    for mode in modes:
        r = figures[mode] = fire_to_start(server, fires, rate, mode)
        print(f"{labels[mode]:<34}{r['fires']:>7}{r['p50_ms']:>9}{r['p99_ms']:>9}{r['max_ms']:>9}")
    return figures


def report_drains(runs: int, server: str, failures: list[str]) -> float:
    """Print the drains; returns raw Procrastinate's rate with two workers."""
    print(f"Drain: {runs} no-op runs queued at once (critical/default/low 60/30/10 %)")
    header = f"{'workers':>8}{'raw runs/s':>13}{'ours runs/s':>13}{'ours/raw':>10}{'ours s':>9}"
    print(header)
    print("-" * len(header))
    capacity = 0.0
    for workers in WORKER_COUNTS:
        raw = drain(server, runs, workers, raw=True)
        ours = drain(server, runs, workers, raw=False)
        share = ours["per_second"] / raw["per_second"]
        print(
            f"{workers:>8}{raw['per_second']:>13}{ours['per_second']:>13}{share:>10.0%}"
            f"{ours['seconds']:>9}"
        )
        if share < TARGET_DRAIN_SHARE:
            failures.append(f"{workers} worker(s): ours drains at {share:.0%} of raw Procrastinate")
        if workers == 2:
            capacity = float(raw["per_second"])
    return capacity


def _tests_database() -> str:
    """TEST_DATABASE_URL, or the `test_database_url` of pyproject.toml, as the tests take."""
    import tomllib

    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        return configured
    pyproject = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))
    url: str = pyproject["tool"]["pytest"]["ini_options"]["test_database_url"]
    return url


if __name__ == "__main__":
    main()
