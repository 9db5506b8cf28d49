"""`health check` through Typer's runner: exit codes, tables, JSON, and `--url`."""

from __future__ import annotations

import json
import os
import socket
import tomllib
from pathlib import Path

import pytest
from sqlalchemy import Engine, update
from typer.testing import CliRunner

from app import ENV_PREFIX, PROJECT_NAME, __version__
from app.cli.main import app
from app.components.backend.main import create_app
from app.components.scheduler.main import create_scheduler
from app.core.db import session_scope
from app.core.enums import SchedulerState
from app.core.models import SchedulerInstance
from app.core.settings import Settings, get_settings
from tests.conftest import free_port
from tests.helpers import serve, stop, write_heartbeat

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


async def register_jobs(settings: Settings, engine: Engine) -> list[str]:
    scheduler = create_scheduler(settings=settings, engine=engine)
    scheduler.start(paused=True)
    ids = [job.id for job in scheduler.get_jobs()]
    await stop(scheduler)
    return ids


def test_help_lists_the_commands() -> None:
    code, output = invoke("--help")
    assert code == 0
    assert "health" in output
    code, output = invoke("health", "check", "--help")
    assert code == 0
    for option in ("--detailed", "--json", "--url"):
        assert option in output


def test_version() -> None:
    code, output = invoke("--version")
    assert code == 0
    assert output.strip() == f"{PROJECT_NAME} {__version__}"
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert __version__ == tomllib.loads(pyproject.read_text())["project"]["version"]


def test_unhealthy_without_a_scheduler(engine: Engine) -> None:
    code, output = invoke("health", "check")
    assert code == 1
    assert "Status: unhealthy" in output
    assert "no scheduler has reported a heartbeat yet" in output


def test_healthy_with_a_fresh_heartbeat(engine: Engine) -> None:
    write_heartbeat(engine)
    code, output = invoke("health", "check")
    assert code == 0
    assert output.strip() == "Status: healthy"


async def test_detailed_lists_components_and_jobs(settings: Settings, engine: Engine) -> None:
    ids = await register_jobs(settings, engine)
    heartbeat = write_heartbeat(engine)
    code, output = invoke("health", "check", "--detailed")
    assert code == 0
    assert heartbeat.instance_id in output
    assert "heartbeat" in output
    for job_id in ids:
        assert job_id in output
    assert "scheduled" in output


async def test_json_output(settings: Settings, engine: Engine) -> None:
    ids = await register_jobs(settings, engine)
    write_heartbeat(engine, age_seconds=60)
    code, output = invoke("health", "check", "--detailed", "--json")
    report = json.loads(output)
    assert code == 1
    assert report["status"] == "unhealthy"
    assert report["database"]["healthy"] is True
    assert report["scheduler"]["heartbeat_age_seconds"] >= 60
    assert {job["id"] for job in report["jobs"]} == set(ids)
    assert all(job["next_run_time"] for job in report["jobs"])


def test_missing_database_file_is_an_error_not_a_new_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    missing = f"{tmp_path}/nowhere/app.db"
    monkeypatch.setenv(f"{ENV_PREFIX}DATABASE_URL", f"sqlite:///{missing}")
    get_settings.cache_clear()
    code, output = invoke("health", "check")
    assert code == 1
    assert "does not exist" in output
    assert not os.path.exists(missing)


def test_invalid_settings_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}TIMEZONE", "Atlantis/Capital")
    get_settings.cache_clear()
    code, output = invoke("health", "check")
    assert code == 2
    assert f"{ENV_PREFIX}TIMEZONE: 'Atlantis/Capital' is not an IANA time zone" in output


async def test_url_asks_a_running_api(settings: Settings, engine: Engine) -> None:
    ids = await register_jobs(settings, engine)
    write_heartbeat(engine)
    with serve(create_app(settings), free_port()) as url:
        code, output = invoke("health", "check", "--detailed", "--url", url)
        json_code, json_output = invoke("health", "check", "--json", "--url", url)
    assert code == 0
    for job_id in ids:
        assert job_id in output
    assert json_code == 0
    assert json.loads(json_output)["status"] == "healthy"


def test_url_that_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, output = invoke("health", "check", "--url", url, "--timeout", "2")
    assert code == 1
    assert f"cannot reach the API at {url}" in output


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "ftp://host"])
def test_url_without_http_is_refused(url: str) -> None:
    code, output = invoke("health", "check", "--url", url)
    assert code == 2
    assert "must start with http:// or https://" in output


def test_malformed_url_is_an_error_not_a_traceback() -> None:
    code, output = invoke("health", "check", "--url", "http://[::1")
    assert code == 1
    assert "cannot reach the API at http://[::1" in output


def test_host_scheduler_check_judges_this_hosts_own_heartbeat(engine: Engine) -> None:
    code, output = invoke("health", "scheduler")
    assert code == 1
    assert f"no scheduler on {socket.gethostname()} has reported a heartbeat yet" in output

    write_heartbeat(engine, SchedulerState.RUNNING, age_seconds=60)
    code, output = invoke("health", "scheduler")
    assert code == 1
    assert "stale after" in output

    # A standby replica is alive: its container is healthy though another one leads.
    standby = write_heartbeat(engine, SchedulerState.STANDBY)
    code, output = invoke("health", "scheduler")
    assert code == 0, output
    assert f"instance {standby.instance_id}" in output
    assert "standby" in output

    write_heartbeat(engine, SchedulerState.STOPPED)
    code, output = invoke("health", "scheduler")
    assert code == 1
    assert "stopped" in output


def test_host_scheduler_check_ignores_other_hosts(engine: Engine) -> None:
    heartbeat = write_heartbeat(engine, SchedulerState.RUNNING)
    with session_scope(engine) as session:
        session.execute(
            update(SchedulerInstance)
            .where(SchedulerInstance.instance_id == heartbeat.instance_id)
            .values(hostname="another-host")
        )
    code, output = invoke("health", "scheduler")
    assert code == 1
    assert f"no scheduler on {socket.gethostname()}" in output
