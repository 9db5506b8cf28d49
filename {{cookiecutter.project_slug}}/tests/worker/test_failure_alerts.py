"""A job's failures in a row, counted across two worker processes: the alert at the threshold
and at each multiple, the streak in the leader's metrics, and its end at a success."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select

from app import ENV_PREFIX
from app.components.management.service import Management
from app.core.models import Job
from app.core.settings import Settings
from tests.conftest import Launcher, free_port
from tests.helpers import wait_for
from tests.worker.processes import JOBS
from tests.worker.test_workers import ON, ended


def alerts_in(log: Path) -> list[dict[str, Any]]:
    """The alerts the processes logged (the default hook), oldest first."""
    alerts = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record["message"] == "job keeps failing":
                alerts.append(record)
    return alerts


def streak_of(engine: Engine, job_id: str) -> int:
    with engine.connect() as connection:
        streak = connection.scalar(select(Job.consecutive_failures).where(Job.id == job_id))
    assert streak is not None
    return streak


def scraped_streaks(port: int) -> dict[str, float]:
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        sample.labels["job_id"]: sample.value
        for family in text_string_to_metric_families(page)
        if family.name == "scheduler_job_consecutive_failures"
        for sample in family.samples
    }


def test_failures_in_a_row_alert_whichever_worker_ran_them(
    start: Launcher, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    common = {
        **ON,
        "TEST_MARKER_DIR": str(tmp_path),
        f"{ENV_PREFIX}ALERT_AFTER_CONSECUTIVE_FAILURES": "2",
    }
    start(
        "tests.worker.processes",
        TEST_PROCESS_ROLE="scheduler",
        **{f"{ENV_PREFIX}SCHEDULER_METRICS_PORT": str(port)},
        **common,
    )
    first = start("tests.worker.processes", TEST_PROCESS_ROLE="worker", **common)
    log = tmp_path / "tests.worker.processes.log"
    manage = Management(engine, settings, JOBS)

    def run_once(expected_ends: int) -> None:
        manage.run("broken", {})
        wait_for(
            lambda: len(ended(engine, "broken")) == expected_ends,
            60,
            f"run {expected_ends} of broken to end",
        )

    # Three failures on one worker, two on another: the streak is the job's, not a process's.
    for count in range(1, 4):
        run_once(count)
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 0
    start("tests.worker.processes", TEST_PROCESS_ROLE="worker", **common)
    for count in range(4, 6):
        run_once(count)
    failures = ended(engine, "broken")
    assert [run.status for run in failures] == ["failed"] * 5
    workers = [run.worker_id for run in failures]
    assert len(set(workers[:3])) == len(set(workers[3:])) == 1
    assert workers[0] != workers[3]
    assert streak_of(engine, "broken") == 5
    alerts = alerts_in(log)
    assert [alert["consecutive_failures"] for alert in alerts] == [2, 4]
    assert [alert["execution_id"] for alert in alerts] == [failures[1].id, failures[3].id]
    assert {alert["error"] for alert in alerts} == {"still broken"}
    wait_for(
        lambda: scraped_streaks(port).get("broken") == 5,
        30,
        lambda: f"the leader's metrics to show the streak; got {scraped_streaks(port)}",
    )

    # A success ends the streak; the next failure starts a new one, below the threshold.
    (tmp_path / "mended").touch()
    run_once(6)
    assert ended(engine, "broken")[-1].status == "succeeded"
    assert streak_of(engine, "broken") == 0
    wait_for(lambda: "broken" not in scraped_streaks(port), 30, "the streak to leave the metrics")
    (tmp_path / "mended").unlink()
    run_once(7)
    assert streak_of(engine, "broken") == 1
    assert len(alerts_in(log)) == 2
