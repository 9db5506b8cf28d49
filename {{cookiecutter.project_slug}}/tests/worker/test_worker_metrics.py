"""A worker's own `/metrics`: the runs it ran under the scheduler's names, counted as its rows
say, and its queues' load; and its port, refused in one clear line when taken."""

from __future__ import annotations

import re
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app import ENV_PREFIX
from app.components.management.service import Management
from app.core.enums import ExecutionStatus, TriggerKind
from app.core.models import JobExecution
from app.core.settings import Settings
from tests.conftest import Launcher, free_port
from tests.helpers import taken_port, wait_for
from tests.test_processes import PROJECT_ROOT
from tests.worker.processes import JOBS
from tests.worker.test_workers import ON

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scraped(port: int) -> Samples:
    """Every sample the worker serves, by name and labels."""
    try:
        page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def worker_rule_metrics() -> set[str]:
    """The metric families the workers' alert rules read."""
    rules = (PROJECT_ROOT / "deploy" / "prometheus" / "worker-alerts.yml").read_text()
    series = re.findall(r"\b(?:scheduler|worker)_[a-z_]+\b", rules)
    return {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in series}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def rows(engine: Engine) -> list[JobExecution]:
    with Session(engine) as session:
        return list(session.scalars(select(JobExecution)))


def test_a_workers_metrics_count_the_runs_it_ran_as_their_rows_do(
    start: Launcher, engine: Engine, settings: Settings
) -> None:
    port = free_port()
    scheduler = start("tests.worker.processes", TEST_PROCESS_ROLE="scheduler", **ON)
    start(
        "tests.worker.processes",
        TEST_PROCESS_ROLE="worker",
        **{**ON, f"{ENV_PREFIX}WORKER_METRICS_PORT": str(port)},
    )
    wait_for(
        lambda: (
            value(scraped(port), "scheduler_runs_total", job_id="tick", status="succeeded") >= 2
        ),
        60,
        lambda: f"the worker's metrics to count two ticks; got {scraped(port)}",
    )
    figures = scraped(port)
    for queue, limit in (("critical", 6), ("default", 3), ("low", 1)):
        assert value(figures, "worker_concurrency", queue=queue) == limit
    # The leader's families are the scheduler's own to serve.
    assert not any(name == "scheduler_leader" for name, _ in figures)
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    served = {family.name for family in text_string_to_metric_families(page)}
    wanted = {name for name in worker_rule_metrics() if name.startswith("worker_")}
    assert wanted
    assert wanted <= served, wanted - served

    manage = Management(engine, settings, JOBS)
    manage.run("flaky", {})
    # Two runs of a job limited to one at once: the second is skipped, the first goes 5 s.
    manage.run("single", {})
    manage.run("single", {})
    wait_for(
        lambda: value(scraped(port), "worker_runs_in_progress", queue="critical") == 1,
        30,
        lambda: f"the lingering run in progress; got {scraped(port)}",
    )

    # No more fires: once the queue is empty, every run has ended on the worker.
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=30) == 0
    wait_for(
        lambda: all(ExecutionStatus(run.status).is_final for run in rows(engine)),
        30,
        lambda: f"every run to end; got {[(r.job_id, r.status) for r in rows(engine)]}",
    )
    ran = [run for run in rows(engine) if run.worker_id]
    ends = Counter((run.job_id, str(run.status)) for run in ran)
    assert ends[("flaky", "failed")] == 2
    assert ends[("single", "succeeded")] == 1
    assert ends[("single", "skipped")] == 1
    figures = scraped(port)
    counted = {
        (dict(labels)["job_id"], dict(labels)["status"]): count
        for (name, labels), count in figures.items()
        if name == "scheduler_runs_total" and count
    }
    assert counted == ends
    assert value(figures, "scheduler_retries_total", job_id="flaky") == 1
    assert (
        value(figures, "scheduler_fires_skipped_total", job_id="single", reason="max_instances")
        == 1
    )
    assert value(figures, "worker_runs_in_progress", queue="critical") == 0

    # Lateness is a fire's: the ticks' scheduled runs, not the manual runs or the retry.
    fires = [
        (run.started_at - run.scheduled_at).total_seconds()
        for run in ran
        if run.trigger_kind == TriggerKind.SCHEDULE and run.started_at is not None
    ]
    assert fires
    late = sum(max(seconds, 0.0) for seconds in fires)
    assert value(figures, "scheduler_fire_lateness_seconds_count", queue="default") == len(fires)
    assert value(figures, "scheduler_fire_lateness_seconds_sum", queue="default") == (
        pytest.approx(late, abs=1e-3)
    )
    started = Counter(run.queue for run in ran if run.started_at)
    for queue, count in started.items():
        assert value(figures, "scheduler_run_duration_seconds_count", queue=queue) == count


def test_a_worker_refuses_a_taken_metrics_port_with_what_to_do(
    start: Launcher, tmp_path: Path
) -> None:
    with taken_port() as port:
        worker = start(
            "app.entrypoints.worker", **{**ON, f"{ENV_PREFIX}WORKER_METRICS_PORT": str(port)}
        )
        assert worker.wait(timeout=30) == 1
    log = (tmp_path / "app.entrypoints.worker.log").read_text()
    assert f"error: port {port} on 127.0.0.1 is already in use by another process" in log
    assert f"{ENV_PREFIX}WORKER_METRICS_PORT=9467 in .env" in log
    assert "Traceback" not in log
