"""The real processes: scheduler and API started as `make run` starts them.

The tests wait on the database through `check_health`, in this process, as the CLI and the
API would read it; the CLI itself is started only where the CLI is what is tested.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from app import ENV_PREFIX
from app.core.db import session_scope
from app.core.enums import ExecutionStatus
from app.core.health import HealthReport, check_health
from app.core.models import JobExecution
from app.core.settings import Settings
from tests.conftest import Launcher
from tests.helpers import taken_port, wait_for

CLI = [sys.executable, "-m", "app.cli"]
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def api_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env[f'{ENV_PREFIX}API_PORT']}"


class Health:
    """The service's health as another process reads it from the shared database."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.stale_after = settings.heartbeat_stale_after_seconds

    def report(self) -> HealthReport:
        return check_health(self.engine, self.stale_after)

    def healthy(self) -> bool:
        return self.report().healthy

    def unhealthy(self) -> bool:
        return not self.report().healthy

    def leader_pid(self) -> int | None:
        return self.report().scheduler.pid


@pytest.fixture
def health(fresh_engine: Engine, settings: Settings) -> Health:
    return Health(fresh_engine, settings)


def children(pid: int) -> list[int]:
    """The processes `pid` started and still has (Linux's /proc).

    A stop is checked on these rather than on the API's port: under parallel tests another
    test's API may take the port once it is free.
    """
    listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in listed]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def api_ready(env: dict[str, str], healthy: bool = True) -> bool:
    """Whether the API process answers readiness with 200 (`healthy`) or 503."""
    try:
        response = httpx.get(f"{api_url(env)}/health/ready", timeout=5)
    except httpx.TransportError:
        return False
    return response.status_code == (200 if healthy else 503)


def test_scheduler_and_api_processes(
    env: dict[str, str], start: Launcher, health: Health, tmp_path: Path
) -> None:
    scheduler = start("app.entrypoints.scheduler")
    api = start("app.entrypoints.api")
    wait_for(health.healthy, 30, "a healthy scheduler")
    wait_for(lambda: api_ready(env), 30, "the API")

    # The CLI against both processes: the database directly, and the API over HTTP.
    detailed = cli(env, "health", "check", "--detailed")
    remote = cli(env, "health", "check", "--detailed", "--json", "--url", api_url(env))
    assert detailed.returncode == 0, detailed.stdout + detailed.stderr
    assert remote.returncode == 0, remote.stdout + remote.stderr
    jobs = json.loads(remote.stdout)["jobs"]
    assert jobs
    for job in jobs:
        assert job["id"] in detailed.stdout
        assert job["next_run_time"] is not None

    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=10) == 0
    log = (tmp_path / "app.entrypoints.scheduler.log").read_text()
    assert '"message": "scheduler stopped"' in log
    assert "Traceback" not in log

    after = cli(env, "health", "check")
    assert after.returncode == 1
    assert "scheduler: stopped" in after.stdout
    api.send_signal(signal.SIGTERM)
    assert api.wait(timeout=10) == 0
    assert "Traceback" not in (tmp_path / "app.entrypoints.api.log").read_text()


def test_ctrl_c_stops_the_scheduler_cleanly(
    start: Launcher, health: Health, tmp_path: Path
) -> None:
    scheduler = start("app.entrypoints.scheduler")
    wait_for(health.healthy, 30, "a healthy scheduler")
    scheduler.send_signal(signal.SIGINT)
    assert scheduler.wait(timeout=10) == 0
    assert "Traceback" not in (tmp_path / "app.entrypoints.scheduler.log").read_text()
    assert health.report().scheduler.detail.startswith("stopped")


def test_killed_scheduler_turns_stale(start: Launcher, health: Health) -> None:
    scheduler = start("app.entrypoints.scheduler")
    wait_for(health.healthy, 30, "a healthy scheduler")
    scheduler.kill()
    scheduler.wait()
    wait_for(health.unhealthy, 10, "the heartbeat to go stale")
    assert "stale after 3 s" in health.report().scheduler.detail


def test_local_runner_starts_both_and_stops_both(
    env: dict[str, str], start: Launcher, health: Health
) -> None:
    local = start("app.entrypoints.local")
    wait_for(lambda: api_ready(env), 30, "both processes")
    started = children(local.pid)
    local.send_signal(signal.SIGINT)
    assert local.wait(timeout=15) == 0
    assert not [pid for pid in started if alive(pid)]
    assert health.report().scheduler.detail.startswith("stopped")


def test_local_runner_stops_the_api_when_the_scheduler_exits(
    env: dict[str, str], start: Launcher, health: Health, tmp_path: Path
) -> None:
    local = start("app.entrypoints.local")
    wait_for(lambda: api_ready(env), 30, "both processes")
    started = children(local.pid)
    pid = health.leader_pid()
    assert pid is not None
    assert pid in started

    # Half a service would keep serving, and its jobs would call a port it no longer owns.
    os.kill(pid, signal.SIGTERM)
    assert local.wait(timeout=20) == 1
    assert not [child for child in started if alive(child)]
    log = (tmp_path / "app.entrypoints.local.log").read_text()
    assert "the scheduler exited with status 0, so the rest were stopped too" in log
    assert '"child": "scheduler"' in log
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("setting", "example"), [("API_PORT", 8080), ("SCHEDULER_METRICS_PORT", 9466)]
)
def test_local_runner_refuses_a_taken_port_before_starting_anything(
    start: Launcher, health: Health, tmp_path: Path, setting: str, example: int
) -> None:
    with taken_port() as port:
        local = start("app.entrypoints.local", **{f"{ENV_PREFIX}{setting}": str(port)})
        assert local.wait(timeout=30) == 1
    log = (tmp_path / "app.entrypoints.local.log").read_text()
    assert f"error: port {port} on 127.0.0.1 is already in use by another process" in log
    assert f"{ENV_PREFIX}{setting}={example} in .env" in log
    assert "Traceback" not in log
    # Nothing started: no scheduler ever wrote a heartbeat.
    assert health.report().scheduler.pid is None


def test_second_scheduler_waits_on_standby_and_takes_over(
    start: Launcher, health: Health, tmp_path: Path
) -> None:
    first = start("app.entrypoints.scheduler")
    wait_for(health.healthy, 30, "the first scheduler")
    second = start("app.entrypoints.scheduler")
    wait_for(
        lambda: health.report().scheduler.standby_instances == 1,
        30,
        "the second scheduler on standby",
    )
    report = health.report()
    assert report.healthy
    assert report.scheduler.pid == first.pid

    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=10) == 0

    def second_leads() -> bool:
        report = health.report()
        return report.healthy and report.scheduler.pid == second.pid

    wait_for(second_leads, 30, "the standby to take over")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=10) == 0
    log = (tmp_path / "app.entrypoints.scheduler.log").read_text()
    assert "another scheduler leads; waiting on standby" in log


def slow_job_env(seconds: float, tmp_path: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": str(PROJECT_ROOT),
        "SLOW_JOB_SECONDS": str(seconds),
        "SLOW_JOB_MARKER": str(tmp_path / "slow-job-started"),
        f"{ENV_PREFIX}SHUTDOWN_TIMEOUT_SECONDS": "2",
    }


def test_stop_waits_for_a_running_job(start: Launcher, tmp_path: Path) -> None:
    scheduler = start("tests.slow_job_scheduler", **slow_job_env(1.5, tmp_path))
    wait_for((tmp_path / "slow-job-started").exists, 30, "the slow job to start")
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=10) == 0
    log = (tmp_path / "tests.slow_job_scheduler.log").read_text()
    assert log.index('"job succeeded"') < log.index('"scheduler stopped"')
    assert "abandoned" not in log


def test_stop_abandons_a_job_after_the_timeout(
    start: Launcher, health: Health, tmp_path: Path
) -> None:
    scheduler = start("tests.slow_job_scheduler", **slow_job_env(120, tmp_path))
    wait_for((tmp_path / "slow-job-started").exists, 30, "the slow job to start")
    began = time.monotonic()
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=10) == 0
    assert time.monotonic() - began < 5
    log = (tmp_path / "tests.slow_job_scheduler.log").read_text()
    assert '"message": "jobs still running at shutdown were abandoned", ' in log
    assert '"job_ids": ["slow"]' in log
    assert health.report().scheduler.detail.startswith("stopped")
    with session_scope(health.engine) as session:
        statuses = set(session.scalars(select(JobExecution.status)))
    # The every-second job's later times found the slow run still going.
    assert statuses - {ExecutionStatus.SKIPPED} == {ExecutionStatus.INTERRUPTED}
