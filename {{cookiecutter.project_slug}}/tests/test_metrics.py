"""Metrics scraped from real processes, parsed with prometheus-client's parser, and checked
against the history table they describe.
"""

from __future__ import annotations

import json
import re
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select

from app import ENV_PREFIX
from app.components.backend.main import create_app
from app.components.management.service import Management
from app.components.scheduler import metrics
from app.core.db import session_scope, utcnow
from app.core.enums import UNFINISHED, ExecutionStatus, MissReason, TriggerKind
from app.core.models import Job, JobExecution, SchedulerInstance
from app.core.settings import Settings
from tests import metrics_scheduler
from tests.conftest import Launcher, free_port
from tests.helpers import taken_port, wait_for
from tests.test_processes import PROJECT_ROOT

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
Counts = dict[tuple[str, ...], float]
SCHEDULER = "tests.metrics_scheduler"


def rule_metrics() -> set[str]:
    """The metric families the shipped alert rules and Grafana dashboard read."""
    rules = (PROJECT_ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()
    dashboard = json.loads((PROJECT_ROOT / "deploy" / "grafana" / "dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    series = re.findall(r"\b(?:scheduler|api)_[a-z_]+\b", "\n".join([rules, *queries]))
    return {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in series}


def families(text: str) -> set[str]:
    """The names of the families a page declares, with or without samples yet."""
    return {family.name for family in text_string_to_metric_families(text)}


def scrape(url: str) -> Samples:
    """Every sample of the page, by name and sorted labels."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def by_label(samples: Samples, name: str, *labels: str) -> Counts:
    """The samples of `name`, keyed by the values of `labels`; zeros left out."""
    found = {}
    for (sample, pairs), value in samples.items():
        if sample == name and value:
            named = dict(pairs)
            found[tuple(named[label] for label in labels)] = value
    return found


class MetricsScheduler:
    """`tests.metrics_scheduler` on a metrics port of its own."""

    def __init__(self, start: Launcher, engine: Engine) -> None:
        self.port = free_port()
        self.process = start(
            SCHEDULER,
            PYTHONPATH=str(PROJECT_ROOT),
            **{f"{ENV_PREFIX}SCHEDULER_METRICS_PORT": str(self.port)},
        )
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.engine = engine
        wait_for(self._leads, 60, "the metrics scheduler to lead")

    def _leads(self) -> bool:
        assert self.process.poll() is None, "the metrics scheduler exited"
        try:
            return scrape(self.url).get(("scheduler_leader", ())) == 1
        except httpx.TransportError:
            return False

    def instance_id(self) -> str:
        """The id the process records its runs under, once its heartbeat names it."""
        found: list[str] = []

        def recorded() -> bool:
            with session_scope(self.engine) as session:
                found[:] = session.scalars(
                    select(SchedulerInstance.instance_id).where(
                        SchedulerInstance.pid == self.process.pid
                    )
                )
            return bool(found)

        wait_for(recorded, 10, "the scheduler's heartbeat")
        return found[0]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=20) == 0


def history(engine: Engine, instance_id: str) -> list[Any]:
    """The ended runs this instance recorded: job, status, reason, attempt, start."""
    with session_scope(engine) as session:
        return list(
            session.execute(
                select(
                    JobExecution.job_id,
                    JobExecution.status,
                    JobExecution.error_message,
                    JobExecution.attempt,
                    JobExecution.trigger_kind,
                    JobExecution.started_at,
                ).where(
                    JobExecution.instance_id == instance_id,
                    JobExecution.status.not_in(UNFINISHED),
                )
            )
        )


def unfinished(engine: Engine) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).where(JobExecution.status.in_(UNFINISHED))) or 0


def count(engine: Engine, job_id: str, status: ExecutionStatus) -> int:
    with session_scope(engine) as session:
        return (
            session.scalar(
                select(func.count()).where(
                    JobExecution.job_id == job_id, JobExecution.status == status
                )
            )
            or 0
        )


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    from app.components.scheduler import jobs as job_list

    monkeypatch.setattr(job_list, "JOBS", metrics_scheduler.JOBS)
    return metrics_scheduler.JOBS


def test_scheduler_metrics_agree_with_the_history(
    start: Launcher, engine: Engine, settings: Settings, jobs: tuple[Any, ...]
) -> None:
    first = MetricsScheduler(start, engine)
    wait_for(
        lambda: (
            count(engine, "succeed", ExecutionStatus.SUCCEEDED) >= 2
            and count(engine, "fail", ExecutionStatus.FAILED) >= 2
            and count(engine, "linger", ExecutionStatus.SKIPPED) >= 1
        ),
        30,
        "runs that succeed, fail and are skipped",
    )
    first.stop()
    # The next scheduler finds times that passed while none ran: the latest of each job's
    # runs, the earlier ones are missed.
    with session_scope(engine) as session:
        latest_due = max(row for row in session.scalars(select(Job.next_run_at)) if row)
    wait_for(lambda: utcnow() > latest_due + timedelta(seconds=1), 5, "times to pass")

    second = MetricsScheduler(start, engine)
    instance = second.instance_id()
    wait_for(
        lambda: any(row.status == ExecutionStatus.MISSED for row in history(engine, instance)),
        30,
        "missed times",
    )
    manage = Management(engine, settings, jobs)
    for job in jobs:
        assert manage.pause(job.id).status == "applied"
    wait_for(lambda: unfinished(engine) == 0, 30, "the runs in flight and the retries to end")

    # The history and the counts are read again until they agree: the recorder counts a run's
    # end when it queues the row and writes rows in batches, so for a moment the counts are
    # ahead of the rows.
    read: dict[str, Any] = {}

    def compared() -> tuple[tuple[Counts, Counts], tuple[Counts, Counts]]:
        """(history, scraped) for the runs' ends, then for the durations."""
        rows, samples = read["rows"], read["samples"]
        return (
            (
                dict(Counter((row.job_id, str(row.status)) for row in rows)),
                by_label(samples, "scheduler_runs_total", "job_id", "status"),
            ),
            (
                {("default",): sum(1 for row in rows if row.started_at is not None)},
                by_label(samples, "scheduler_run_duration_seconds_count", "queue"),
            ),
        )

    def agree() -> bool:
        read.update(rows=history(engine, instance), samples=scrape(second.url))
        return all(wanted == scraped for wanted, scraped in compared())

    def disagreement() -> str:
        (runs, scraped_runs), (durations, scraped_durations) = compared()
        return (
            f"the scraped counts to agree with the history: runs {runs} in the history, "
            f"{scraped_runs} scraped; durations {durations}, {scraped_durations} scraped"
        )

    wait_for(agree, 10, disagreement)
    rows, samples = read["rows"], read["samples"]

    missed = Counter(row.job_id for row in rows if row.status == ExecutionStatus.MISSED)
    assert missed
    assert all(
        "catch_up=latest" in row.error_message
        for row in rows
        if row.status == ExecutionStatus.MISSED
    )
    assert by_label(samples, "scheduler_fires_missed_total", "job_id", "reason") == {
        (job_id, MissReason.CATCH_UP_LATEST.value): n for job_id, n in missed.items()
    }
    skipped = Counter(row.job_id for row in rows if row.status == ExecutionStatus.SKIPPED)
    assert by_label(samples, "scheduler_fires_skipped_total", "job_id", "reason") == {
        (job_id, "max_instances"): n for job_id, n in skipped.items()
    }
    # A first attempt that failed planned a retry here (`fail` allows two attempts). A retry
    # the first scheduler planned may have run here: planned there, not counted here.
    retries = Counter(
        row.job_id for row in rows if row.status == ExecutionStatus.FAILED and row.attempt == 1
    )
    assert retries["fail"] >= 1
    assert by_label(samples, "scheduler_retries_total", "job_id") == {
        (job_id,): n for job_id, n in retries.items()
    }
    started = Counter(row.job_id for row in rows if row.started_at is not None)
    # The histograms are by queue; every job here is on `default`. Lateness is of scheduled
    # times only: a retry's delay is its policy, not lateness.
    fired = sum(
        1 for row in rows if row.started_at is not None and row.trigger_kind == TriggerKind.SCHEDULE
    )
    assert by_label(samples, "scheduler_fire_lateness_seconds_count", "queue") == {
        ("default",): fired
    }
    # Every run that started has ended (the jobs are paused and nothing is in flight).
    assert by_label(samples, "scheduler_run_duration_seconds_count", "queue") == {
        ("default",): started.total()
    }
    assert by_label(samples, "scheduler_job_run_seconds_count", "job_id") == {
        (job_id,): n for job_id, n in started.items()
    }
    # `linger` sleeps 0.7 s a run: none of its runs is in the buckets up to 0.5 s, and its
    # sum holds at least 0.7 s a run. (The others are quick, but a loaded machine may delay a
    # thread's start: their times are not asserted.)
    up_to_half_a_second = samples[
        ("scheduler_run_duration_seconds_bucket", (("le", "0.5"), ("queue", "default")))
    ]
    assert up_to_half_a_second <= started.total() - started["linger"]
    linger_seconds = samples[("scheduler_job_run_seconds_sum", (("job_id", "linger"),))]
    assert linger_seconds >= 0.69 * started["linger"]

    assert samples[("scheduler_leader", ())] == 1
    assert samples[("scheduler_leader_changes_total", ())] == 1
    assert samples[("scheduler_jobs", ())] == len(jobs)
    assert samples[("scheduler_jobs_paused", ())] == len(jobs)
    # Paused jobs have no next fire time.
    assert by_label(samples, "scheduler_job_next_fire_timestamp_seconds", "job_id") == {}
    # The failures since the last success: every run of `fail` fails.
    assert by_label(samples, "scheduler_job_consecutive_failures", "job_id")[("fail",)] >= 2
    assert by_label(samples, "scheduler_database_write_failures_total", "operation") == {}
    assert samples[("scheduler_change_apply_seconds_count", (("kind", "job"),))] >= len(jobs)
    assert by_label(samples, "scheduler_runs_in_progress", "job_id") == {}
    second.stop()


def test_a_standby_reports_it_does_not_lead_until_it_takes_over(
    start: Launcher, engine: Engine, jobs: tuple[Any, ...]
) -> None:
    leader = MetricsScheduler(start, engine)
    now = utcnow().timestamp()
    next_fires = by_label(scrape(leader.url), "scheduler_job_next_fire_timestamp_seconds", "job_id")
    assert set(next_fires) == {(job.id,) for job in jobs}
    # Each is the job's next time: within an interval (at most half a second) from now.
    assert all(now - 1 <= moment <= now + 1.5 for moment in next_fires.values())

    standby_port = free_port()
    standby = start(
        SCHEDULER,
        PYTHONPATH=str(PROJECT_ROOT),
        **{f"{ENV_PREFIX}SCHEDULER_METRICS_PORT": str(standby_port)},
    )
    standby_url = f"http://127.0.0.1:{standby_port}/metrics"

    def answers() -> bool:
        assert standby.poll() is None, "the standby exited"
        try:
            scrape(standby_url)
        except httpx.TransportError:
            return False
        return True

    wait_for(answers, 60, "the standby's metrics")
    # Every series the alert rules read is one the leader serves.
    served = families(httpx.get(leader.url, timeout=10).text)
    wanted = {name for name in rule_metrics() if name.startswith("scheduler_")}
    assert wanted
    assert wanted <= served, wanted - served
    watching = scrape(standby_url)
    assert watching[("scheduler_leader", ())] == 0
    assert watching[("scheduler_leader_changes_total", ())] == 0
    # Only the leader reports the jobs: two targets never give two series of one job.
    assert by_label(watching, "scheduler_job_next_fire_timestamp_seconds", "job_id") == {}
    assert ("scheduler_jobs", ()) not in watching

    leader.process.send_signal(signal.SIGKILL)
    leader.process.wait()
    wait_for(lambda: scrape(standby_url)[("scheduler_leader", ())] == 1, 30, "the standby to lead")
    taken = scrape(standby_url)
    assert taken[("scheduler_leader_changes_total", ())] == 1
    assert taken[("scheduler_leader_epoch", ())] >= 2
    assert taken[("scheduler_jobs", ())] == len(jobs)
    standby.send_signal(signal.SIGTERM)
    assert standby.wait(timeout=20) == 0


def test_a_taken_metrics_port_stops_the_scheduler_with_what_to_do(
    start: Launcher, tmp_path: Path
) -> None:
    with taken_port() as port:
        process = start(
            "app.entrypoints.scheduler", **{f"{ENV_PREFIX}SCHEDULER_METRICS_PORT": str(port)}
        )
        assert process.wait(timeout=30) == 1
    output = (tmp_path / "app.entrypoints.scheduler.log").read_text()
    assert f"port {port} on 127.0.0.1 is already in use" in output
    assert f"{ENV_PREFIX}SCHEDULER_METRICS_PORT=" in output
    assert "Traceback" not in output


def test_without_metrics_the_scheduler_listens_on_no_port(
    start: Launcher, engine: Engine, tmp_path: Path, jobs: tuple[Any, ...]
) -> None:
    port = free_port()
    process = start(
        SCHEDULER,
        PYTHONPATH=str(PROJECT_ROOT),
        **{
            f"{ENV_PREFIX}METRICS_ENABLED": "false",
            f"{ENV_PREFIX}SCHEDULER_METRICS_PORT": str(port),
        },
    )
    wait_for(lambda: count(engine, "succeed", ExecutionStatus.SUCCEEDED) >= 1, 60, "a run")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    assert "metrics served" not in (tmp_path / f"{SCHEDULER}.log").read_text()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_api_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    before = scrape_client(client)
    client.get("/health")
    client.get("/api/jobs/one-job")
    client.get("/api/jobs/another-job")
    client.get("/no/such/page/12345")
    client.request("BREW", "/health")
    client.post("/api/jobs", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    after = scrape_client(client)

    def delta(route: str, method: str, status: str) -> float:
        key = (
            "api_requests_total",
            (("method", method), ("route", route), ("status", status)),
        )
        return after.get(key, 0) - before.get(key, 0)

    assert delta("/health", "GET", "200") == 1
    wanted = {name for name in rule_metrics() if name.startswith("api_")}
    assert wanted
    assert wanted <= families(client.get("/metrics").text)
    # Two job ids, one series: the template, not the path.
    assert delta("/api/jobs/{job_id}", "GET", "401") == 2
    assert delta("unmatched", "GET", "404") == 1
    assert delta("/health", "other", "405") == 1
    # Refused by the body limit before routing, and still counted under its route.
    assert delta("/api/jobs", "POST", "413") == 1
    routes = {dict(labels)["route"] for name, labels in after if name == "api_requests_total"}
    assert not any("one-job" in route or "12345" in route for route in routes)
    latency = (
        "api_request_duration_seconds_count",
        (("method", "GET"), ("route", "/api/jobs/{job_id}")),
    )
    assert after[latency] - before.get(latency, 0) == 2


def scrape_client(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_api_metrics_can_be_turned_off(settings: Settings) -> None:
    off = settings.model_copy(update={"metrics_enabled": False})
    with TestClient(create_app(off)) as client:
        assert client.get("/metrics").status_code == 404


def test_a_deleted_jobs_series_go_with_it() -> None:
    metrics.run_ended("gone", ExecutionStatus.FAILED)
    metrics.fire_missed("gone", MissReason.CATCH_UP_NONE)
    metrics.run_finished("gone", "default", 0.1)
    metrics.run_ended("kept", ExecutionStatus.FAILED)
    metrics.forget_job("gone")
    served = registry_samples()
    assert not any(dict(labels).get("job_id") == "gone" for _, labels in served)
    assert any(dict(labels).get("job_id") == "kept" for _, labels in served)


def registry_samples() -> Samples:
    """The scheduler registry's samples, read in this process."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metrics.REGISTRY.collect()
        for sample in family.samples
    }
