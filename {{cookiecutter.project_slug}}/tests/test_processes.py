"""The real processes: scheduler and API started as `make run` starts them, checked via the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from app.core.db import create_db_engine, session_scope
from app.core.models import ExecutionStatus, JobExecution
from app.core.settings import ENV_PREFIX, Settings
from tests.conftest import Launcher
from tests.helpers import wait_for

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


def scheduler_pid(env: dict[str, str]) -> int:
    report = json.loads(cli(env, "health", "check", "--json").stdout)
    pid: int = report["scheduler"]["pid"]
    return pid


def test_scheduler_and_api_processes(env: dict[str, str], start: Launcher, tmp_path: Path) -> None:
    scheduler = start("app.entrypoints.scheduler")
    api = start("app.entrypoints.api")
    wait_for(lambda: cli(env, "health", "check").returncode == 0, 30, "a healthy check")
    wait_for(
        lambda: cli(env, "health", "check", "--url", api_url(env)).returncode == 0, 30, "the API"
    )

    detailed = cli(env, "health", "check", "--detailed")
    remote = cli(env, "health", "check", "--detailed", "--json", "--url", api_url(env))
    assert detailed.returncode == 0, detailed.stdout + detailed.stderr
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
    env: dict[str, str], start: Launcher, tmp_path: Path
) -> None:
    scheduler = start("app.entrypoints.scheduler")
    wait_for(lambda: cli(env, "health", "check").returncode == 0, 30, "a healthy check")
    scheduler.send_signal(signal.SIGINT)
    assert scheduler.wait(timeout=10) == 0
    assert "Traceback" not in (tmp_path / "app.entrypoints.scheduler.log").read_text()
    assert "scheduler: stopped" in cli(env, "health", "check").stdout


def test_killed_scheduler_turns_stale(env: dict[str, str], start: Launcher) -> None:
    scheduler = start("app.entrypoints.scheduler")
    wait_for(lambda: cli(env, "health", "check").returncode == 0, 30, "a healthy check")
    scheduler.kill()
    scheduler.wait()
    wait_for(lambda: cli(env, "health", "check").returncode == 1, 10, "the heartbeat to go stale")
    assert "stale after 3 s" in cli(env, "health", "check").stdout


def test_local_runner_starts_both_and_stops_both(env: dict[str, str], start: Launcher) -> None:
    local = start("app.entrypoints.local")
    url = api_url(env)
    wait_for(
        lambda: cli(env, "health", "check", "--url", url).returncode == 0, 30, "both processes"
    )
    pid = scheduler_pid(env)

    # Stopping the scheduler leaves the API up, reporting the scheduler as down.
    os.kill(pid, signal.SIGTERM)
    wait_for(
        lambda: cli(env, "health", "check", "--url", url).returncode == 1,
        10,
        "an unhealthy API check",
    )
    assert local.poll() is None

    local.send_signal(signal.SIGINT)
    assert local.wait(timeout=15) == 0
    assert cli(env, "health", "check", "--url", url, "--timeout", "1").returncode == 1


def test_second_scheduler_waits_on_standby_and_takes_over(
    env: dict[str, str], start: Launcher, tmp_path: Path
) -> None:
    first = start("app.entrypoints.scheduler")
    wait_for(lambda: cli(env, "health", "check").returncode == 0, 30, "the first scheduler")
    second = start("app.entrypoints.scheduler")
    wait_for(
        lambda: (
            json.loads(cli(env, "health", "check", "--json").stdout)["scheduler"][
                "standby_instances"
            ]
            == 1
        ),
        30,
        "the second scheduler on standby",
    )
    report = json.loads(cli(env, "health", "check", "--json").stdout)
    assert report["status"] == "healthy"
    assert report["scheduler"]["pid"] == first.pid

    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=10) == 0
    wait_for(lambda: scheduler_pid(env) == second.pid, 30, "the standby to take over")
    assert cli(env, "health", "check").returncode == 0
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=10) == 0
    log = (tmp_path / "app.entrypoints.scheduler.log").read_text()
    assert "another scheduler holds the leader lock; waiting on standby" in log


def slow_job_env(seconds: float, tmp_path: Path) -> dict[str, str]:
    return {
        "PYTHONPATH": str(PROJECT_ROOT),
        "SLOW_JOB_SECONDS": str(seconds),
        "SLOW_JOB_MARKER": str(tmp_path / "slow-job-started"),
        f"{ENV_PREFIX}SHUTDOWN_TIMEOUT_SECONDS": "2",
    }


def test_stop_waits_for_a_running_job(env: dict[str, str], start: Launcher, tmp_path: Path) -> None:
    scheduler = start("tests.slow_job_scheduler", **slow_job_env(1.5, tmp_path))
    wait_for((tmp_path / "slow-job-started").exists, 30, "the slow job to start")
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=10) == 0
    log = (tmp_path / "tests.slow_job_scheduler.log").read_text()
    assert log.index('"job succeeded"') < log.index('"scheduler stopped"')
    assert "abandoned" not in log


def test_stop_abandons_a_job_after_the_timeout(
    env: dict[str, str], start: Launcher, tmp_path: Path, settings: Settings
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
    assert "scheduler: stopped" in cli(env, "health", "check").stdout
    engine = create_db_engine(settings.database_url, create_file=False)
    with session_scope(engine) as session:
        statuses = set(session.scalars(select(JobExecution.status)))
    engine.dispose()
    assert statuses == {ExecutionStatus.INTERRUPTED}
