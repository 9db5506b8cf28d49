"""What the service shows of its workers, and the order a queue's runs are taken in, against
real worker processes: `worker status`, `worker health`, readiness, the scheduler's metrics."""

from __future__ import annotations

import json
import signal

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert
from typer.testing import CliRunner

from app import ENV_PREFIX
from app.cli.main import app as cli
from app.components.backend.main import create_app
from app.components.management.service import Management
from app.components.scheduler.catalog import sync_code_jobs
from app.components.scheduler.dispatch import Deferral
from app.components.scheduler.history import execution_row, queue_runs
from app.components.worker.queue import WorkerQueue
from app.core.db import utcnow, write_session, write_transaction
from app.core.enums import ExecutionStatus, TriggerKind
from app.core.models import JobExecution
from app.core.settings import Settings, get_settings
from app.core.workers import WorkersHealth
from tests.conftest import Launcher, free_port
from tests.helpers import wait_for
from tests.worker.processes import JOBS
from tests.worker.test_worker_metrics import worker_rule_metrics
from tests.worker.test_workers import ON, ended, runs_of


def test_within_a_queue_the_runs_of_higher_priority_jobs_go_first(
    start: Launcher, engine: Engine, settings: Settings
) -> None:
    with write_session(engine) as session:
        sync_code_jobs(session, JOBS, settings.timezone)
    now = utcnow()
    # Queued routine first, interleaved: the order they were queued in is not the order run.
    rows = [
        execution_row(job_id, "low", now, ExecutionStatus.PENDING, trigger_kind=TriggerKind.MANUAL)
        for _ in range(4)
        for job_id in ("routine", "urgent")
    ]
    with write_transaction(engine) as connection:
        connection.execute(insert(JobExecution), rows)
        queue_runs(connection, WorkerQueue(), [Deferral(row["id"], "low") for row in rows])
    with engine.connect() as connection:
        queued: dict[str, int] = dict(
            connection.exec_driver_sql(
                "SELECT args->>'execution_id', priority FROM procrastinate_jobs"
            ).all()
        )
    # Each queue job carries its job's priority, from the job's row.
    assert {queued[row["id"]] for row in rows if row["job_id"] == "urgent"} == {10}
    assert {queued[row["id"]] for row in rows if row["job_id"] == "routine"} == {-5}

    # One run of low at a time (its concurrency): the order of starts is the queue's.
    start("tests.worker.processes", TEST_PROCESS_ROLE="worker", TEST_WORKER_QUEUES="low", **ON)
    wait_for(
        lambda: len(ended(engine, "urgent")) + len(ended(engine, "routine")) == 8,
        60,
        "the eight runs to end",
    )
    runs = [*runs_of(engine, "urgent"), *runs_of(engine, "routine")]
    assert {run.status for run in runs} == {ExecutionStatus.SUCCEEDED}
    order = [run.job_id for run in sorted(runs, key=lambda run: run.started_at or now)]
    assert order == ["urgent"] * 4 + ["routine"] * 4


def status_of(engine: Engine, settings: Settings) -> WorkersHealth:
    report = Management(engine, settings, JOBS).status().workers
    assert report is not None
    return report


def readiness(settings: Settings) -> httpx.Response:
    with TestClient(create_app(settings)) as client:
        response: httpx.Response = client.get("/health/ready")
    return response


def scraped(port: int) -> dict[tuple[str, str], float]:
    """The scheduler's queue families, by (name, queue)."""
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, sample.labels.get("queue", "")): sample.value
        for family in text_string_to_metric_families(page)
        if family.name.startswith(("scheduler_queue", "scheduler_workers"))
        for sample in family.samples
    }


def test_status_health_and_metrics_show_the_workers_their_queues_and_what_waits(
    start: Launcher, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}WORKERS_ENABLED", "true")
    get_settings.cache_clear()
    settings = get_settings()
    port = free_port()
    start(
        "tests.worker.processes",
        TEST_PROCESS_ROLE="scheduler",
        **{f"{ENV_PREFIX}SCHEDULER_METRICS_PORT": str(port)},
        **ON,
    )
    everything = start("tests.worker.processes", TEST_PROCESS_ROLE="worker", **ON)
    critical = start(
        "tests.worker.processes",
        TEST_PROCESS_ROLE="worker",
        TEST_WORKER_QUEUES="critical",
        **ON,
    )
    wait_for(
        lambda: sum(worker.serving for worker in status_of(engine, settings).workers) == 2,
        60,
        lambda: f"both workers to report; got {status_of(engine, settings)}",
    )
    report = status_of(engine, settings)
    assert report.detail == "2 workers running, every queue served"
    loads = {load.queue: load for load in report.queues}
    assert (loads["critical"].workers, loads["critical"].capacity) == (2, 12)
    assert (loads["default"].workers, loads["default"].capacity) == (1, 3)
    assert (loads["low"].workers, loads["low"].capacity) == (1, 1)
    assert sorted(len(worker.concurrency) for worker in report.workers) == [1, 3]

    # Readiness counts the workers in, once the scheduler has reported too; the CLI reads the
    # same report.
    wait_for(
        lambda: readiness(settings).status_code == 200,
        30,
        lambda: f"readiness to pass; got {readiness(settings).json()}",
    )
    ready = readiness(settings)
    assert ready.json()["workers"]["detail"] == "2 workers running, every queue served"
    runner = CliRunner()
    shown = runner.invoke(cli, ["worker", "status", "--json"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["healthy"] is True
    table = runner.invoke(cli, ["worker", "status"], env={"COLUMNS": "200"})
    assert "critical (6), default (3), low (1)" in table.output
    container = runner.invoke(cli, ["worker", "health"])
    assert container.exit_code == 0, container.output
    assert "running, heartbeat" in container.output
    detailed = runner.invoke(cli, ["health", "check", "--detailed"], env={"COLUMNS": "200"})
    assert detailed.exit_code == 0, detailed.output
    assert "2 workers running, every queue served" in detailed.output

    wait_for(
        lambda: scraped(port).get(("scheduler_queue_workers", "critical")) == 2,
        30,
        lambda: f"the leader's metrics to show both workers; got {scraped(port)}",
    )
    figures = scraped(port)
    assert figures[("scheduler_queue_capacity", "critical")] == 12
    assert figures[("scheduler_workers_healthy", "")] == 1
    # The leader serves every family of its own the workers' alert rules read.
    wanted = {name for name in worker_rule_metrics() if name.startswith("scheduler_")}
    assert wanted
    assert wanted <= {name for name, _ in figures}, wanted - {name for name, _ in figures}

    # The worker serving every queue stops: nothing serves low or default, and their runs
    # wait, visibly.
    everything.send_signal(signal.SIGTERM)
    assert everything.wait(30) == 0
    Management(engine, settings, JOBS).run("slow", {})
    wait_for(
        lambda: (
            {load.queue: load for load in status_of(engine, settings).queues}["low"].waiting == 1
        ),
        30,
        lambda: f"the slow run to wait in low; got {status_of(engine, settings)}",
    )
    report = status_of(engine, settings)
    assert not report.healthy
    assert report.detail == "1 worker running, but none serves default, low: their runs wait"
    stopped = next(worker for worker in report.workers if worker.pid == everything.pid)
    assert stopped.state == "stopped"
    low = {load.queue: load for load in report.queues}["low"]
    assert low.oldest_wait_seconds is not None
    assert low.oldest_wait_seconds >= 0
    assert readiness(settings).status_code == 503
    brief = runner.invoke(cli, ["health", "check"], env={"COLUMNS": "200"})
    assert brief.exit_code == 1
    assert "workers: 1 worker running, but none serves default, low" in brief.output
    wait_for(
        lambda: scraped(port).get(("scheduler_queue_waiting", "low")) == 1,
        30,
        lambda: f"the metrics to show the run waiting; got {scraped(port)}",
    )
    assert scraped(port)[("scheduler_workers_healthy", "")] == 0

    critical.send_signal(signal.SIGTERM)
    assert critical.wait(30) == 0
    wait_for(
        lambda: status_of(engine, settings).detail.startswith(
            "no worker is running; the last one stopped"
        ),
        30,
        lambda: f"no worker to run; got {status_of(engine, settings).detail}",
    )
    container = runner.invoke(cli, ["worker", "health"])
    assert container.exit_code == 1
    assert "stopped" in container.output
