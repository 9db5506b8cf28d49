"""Managing a running scheduler: the scheduler is a real process, the API serves over HTTP.

The API and the CLI run in the test process with the scheduler's job list
(`tests/management_scheduler.py`); every change crosses the database to the other process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine
from typer.testing import CliRunner

from app.cli.main import app as cli_app
from app.components.backend.main import create_app
from app.components.scheduler import jobs as job_list
from app.core.db import utcnow
from app.core.settings import Settings
from tests import management_scheduler
from tests.conftest import TEST_TOKEN, Launcher, free_port
from tests.helpers import serve, wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCHEDULER = "tests.management_scheduler"


class Api:
    """The API over HTTP, with the token, and a way to count the `tick` job's runs."""

    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {TEST_TOKEN}"}, timeout=15
        )
        self.ticks_file = data_dir / "ticks.log"

    def ticks(self) -> int:
        return len(self.ticks_file.read_text().splitlines()) if self.ticks_file.exists() else 0

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def execution(self, execution_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get(f"/api/executions/{execution_id}").json()
        return body

    def applied(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        assert body["status"] == "applied", body
        return body


@pytest.fixture
def api(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setattr(job_list, "JOBS", management_scheduler.JOBS)
    # The runtime jobs here repeat every half second, to be seen running within the test.
    fast = settings.model_copy(update={"runtime_job_min_interval_seconds": 0.1})
    with serve(create_app(fast), free_port()) as url:
        client = Api(url, settings.data_dir)
        yield client
        client.http.close()


def start_scheduler(start: Launcher, api: Api) -> subprocess.Popen[str]:
    process = start(SCHEDULER, PYTHONPATH=str(PROJECT_ROOT))

    def ready() -> bool:
        if process.poll() is not None:
            log = (api.ticks_file.parent.parent / f"{SCHEDULER}.log").read_text()
            pytest.fail(f"the scheduler exited with {process.returncode}:\n{log[-3000:]}")
        return api.http.get("/health/ready").status_code == 200

    # Generous: under the container's test profile four workers share two cores.
    wait_for(ready, 60, "a running scheduler")
    return process


@pytest.fixture
def scheduler(start: Launcher, api: Api) -> subprocess.Popen[str]:
    return start_scheduler(start, api)


def stop_scheduler(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=15) == 0


def test_pause_stops_the_job_and_resume_brings_it_back(
    api: Api, scheduler: subprocess.Popen[str]
) -> None:
    wait_for(lambda: api.ticks() >= 2, 15, "the tick job to run")
    body = api.applied("POST", "/api/jobs/tick/pause")
    assert body["job"]["state"] == "paused"
    assert api.job("tick")["state"] == "paused"
    paused_at = api.ticks()
    time.sleep(2)
    assert api.ticks() == paused_at

    body = api.applied("POST", "/api/jobs/tick/resume")
    assert body["job"]["state"] == "scheduled"
    # The audit log has both, with what the running scheduler made of them.
    log = api.http.get("/api/audit", params={"job_id": "tick"}).json()["items"]
    assert [(entry["action"], entry["outcome"]) for entry in log] == [
        ("resume", "applied"),
        ("pause", "applied"),
    ]
    assert body["job"]["next_run_time"]
    wait_for(lambda: api.ticks() > paused_at, 5, "ticks after resume")


def test_run_now_reaches_succeeded_and_keeps_the_schedule(
    api: Api, scheduler: subprocess.Popen[str]
) -> None:
    before = api.job("wait_async")["next_run_time"]
    body = api.applied("POST", "/api/jobs/wait_async/run", json={"input": {"seconds": 0.5}})
    answered_at = datetime.now(UTC)
    execution_id = body["execution_id"]
    wait_for(lambda: api.execution(execution_id)["status"] == "succeeded", 10, "the run to succeed")
    run = api.execution(execution_id)
    # The answer came once the run was planned, not once it ended (one clock: this machine's).
    assert datetime.fromisoformat(run["finished_at"]) > answered_at
    assert run["trigger_kind"] == "manual"
    assert run["input"] == {"seconds": 0.5}
    assert run["duration_ms"] >= 500
    job = api.job("wait_async")
    assert job["next_run_time"] == before
    assert job["last_run"]["execution_id"] == execution_id
    assert job["success_rate"] == 1.0


def test_reschedule_shows_in_the_next_run_and_survives_a_restart(
    api: Api, start: Launcher, scheduler: subprocess.Popen[str]
) -> None:
    schedule = {"kind": "cron", "expression": "0 5 * * *", "timezone": "Europe/Paris"}
    body = api.applied("PUT", "/api/jobs/wait_async/schedule", json={"schedule": schedule})
    paris = ZoneInfo("Europe/Paris")
    expected = CronTrigger(hour=5, minute=0, timezone=paris).get_next_fire_time(
        None, utcnow().astimezone(paris)
    )
    assert datetime.fromisoformat(body["job"]["next_run_time"]) == expected
    job = api.job("wait_async")
    assert job["trigger"] == 'cron "0 5 * * *" (Europe/Paris)'
    assert job["schedule_overridden"] is True

    stop_scheduler(scheduler)
    start_scheduler(start, api)
    job = api.job("wait_async")
    assert job["trigger"] == 'cron "0 5 * * *" (Europe/Paris)'
    assert datetime.fromisoformat(job["next_run_time"]) == expected


def test_changes_stored_while_no_scheduler_ran_are_settled_in_the_audit_log_when_one_starts(
    api: Api, start: Launcher, engine: Engine
) -> None:
    """Before any scheduler: the changes are stored, their entries pending; once one leads,
    the entries say what it did with them."""
    assert api.http.post("/api/jobs/tick/pause").status_code == 202
    ran = api.http.post("/api/jobs/wait_async/run", json={"input": {"seconds": 0}})
    assert ran.status_code == 202

    def log() -> dict[str, dict[str, Any]]:
        items = api.http.get("/api/audit").json()["items"]
        return {entry["action"]: entry for entry in items}

    assert {action: entry["outcome"] for action, entry in log().items()} == {
        "pause": "pending",
        "run": "pending",
    }
    start_scheduler(start, api)
    wait_for(
        lambda: {entry["outcome"] for entry in log().values()} == {"applied"},
        15,
        "the scheduler to settle both entries",
    )
    entries = log()
    assert entries["pause"]["detail"] == "applied by the scheduler"
    # The leader finds the run's pending row when it starts, and reads the command after:
    # by then the run is planned, or has already ended (a zero-second wait).
    execution_id = ran.json()["execution_id"]
    assert entries["run"]["detail"] in {
        f"run {execution_id} was planned already",
        f"run {execution_id} started",
    }
    wait_for(lambda: api.execution(execution_id)["status"] == "succeeded", 15, "the run")


@pytest.mark.parametrize("job_id", ["wait_async", "wait_blocking"])
def test_cancel_stops_a_long_run_and_records_it(
    api: Api, scheduler: subprocess.Popen[str], job_id: str
) -> None:
    body = api.applied("POST", f"/api/jobs/{job_id}/run", json={"input": {"seconds": 60}})
    execution_id = body["execution_id"]
    wait_for(lambda: api.execution(execution_id)["status"] == "running", 10, "the run to start")
    began = time.monotonic()
    body = api.applied("POST", f"/api/executions/{execution_id}/cancel")
    assert body["execution_id"] == execution_id
    wait_for(
        lambda: api.execution(execution_id)["status"] == "cancelled", 5, "the run to be cancelled"
    )
    assert time.monotonic() - began < 5
    run = api.execution(execution_id)
    assert run["error_message"] == "cancelled on request"
    assert run["duration_ms"] < 10_000
    again = api.http.post(f"/api/executions/{execution_id}/cancel")
    assert again.status_code == 409


def test_a_change_sent_while_no_scheduler_runs_applies_when_one_starts(
    api: Api, start: Launcher, engine: object
) -> None:
    response = api.http.post("/api/jobs/tick/pause")
    assert response.status_code == 202
    assert "applies when it starts" in response.json()["detail"]
    start_scheduler(start, api)
    wait_for(lambda: api.job("tick")["state"] == "paused", 10, "the stored pause to apply")
    assert api.job("tick")["pending_commands"] == 0
    ticks = api.ticks()
    time.sleep(1.5)
    assert api.ticks() == ticks


def test_runtime_job_runs_until_deleted(api: Api, scheduler: subprocess.Popen[str]) -> None:
    job = {
        "id": "extra_tick",
        "name": "Extra tick",
        "function": "tick",
        "schedule": {"kind": "interval", "seconds": 0.5},
    }
    body = api.applied("POST", "/api/jobs", json=job)
    assert body["job"]["origin"] == "runtime"
    path = "/api/jobs/extra_tick/executions"
    wait_for(
        lambda: api.http.get(path, params={"status": "succeeded"}).json()["total"] >= 2,
        10,
        "the runtime job to run",
    )
    api.applied("DELETE", "/api/jobs/extra_tick")
    assert api.http.get("/api/jobs/extra_tick").status_code == 404

    def unfinished() -> int:
        newest = api.http.get(path).json()["items"]
        return sum(run["status"] in ("pending", "running") for run in newest)

    wait_for(lambda: unfinished() == 0, 5, "a run in flight at the delete to end")
    runs = api.http.get(path).json()["total"]
    # Three intervals of the deleted schedule: none may start.
    time.sleep(1.5)
    assert api.http.get(path).json()["total"] == runs


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


@pytest.mark.parametrize("via", ["database", "api"])
def test_cli_manages_the_running_scheduler(
    api: Api, scheduler: subprocess.Popen[str], via: str
) -> None:
    remote = ["--url", api.url] if via == "api" else []

    code, output = cli("jobs", "pause", "tick", *remote)
    assert code == 2
    assert "Pass --yes to confirm" in output

    code, output = cli("jobs", "pause", "tick", "--yes", *remote)
    assert code == 0, output
    assert output.startswith("applied: paused")
    code, output = cli("jobs", "list", "--json", *remote)
    assert {job["id"]: job["state"] for job in json.loads(output)["items"]}["tick"] == "paused"
    code, output = cli("jobs", "pause", "tick", "--yes", *remote)
    assert code == 1
    assert "already paused" in output
    code, output = cli("jobs", "resume", "tick", *remote)
    assert code == 0, output
    assert "applied: resumed: next run" in output

    code, output = cli(
        "jobs", "run", "wait_async", "--input", '{"seconds": 0.1}', "--wait", *remote
    )
    assert code == 0, output
    assert "the run succeeded" in output
    code, output = cli("jobs", "history", "wait_async", "--json", *remote)
    assert json.loads(output)["items"][0]["status"] == "succeeded"
    code, output = cli("jobs", "show", "wait_async", *remote)
    assert code == 0
    assert "100% of the last 1" in output

    code, output = cli("jobs", "reschedule", "wait_async", "--every", "2h", "--yes", *remote)
    assert code == 0, output
    assert api.job("wait_async")["trigger"] == "every 2h"

    code, output = cli("scheduler", "status", "--json", *remote)
    assert code == 0
    status = json.loads(output)
    assert status["healthy"] is True
    leader = status["instances"][0]
    assert leader["pid"] == scheduler.pid
    assert leader["leader"] is True
    assert status["leader"] == leader["instance_id"]
    assert status["epoch"] >= 1
    assert status["lease_expires_at"] is not None
    code, output = cli("scheduler", "status", *remote)
    assert f"Lease: {leader['instance_id']} leads under epoch {status['epoch']}" in output


def test_cli_refuses_a_wrong_token(api: Api, scheduler: subprocess.Popen[str]) -> None:
    code, output = cli("jobs", "list", "--url", api.url, "--token", "wrong-token-0123456789")
    assert code == 1
    assert output.strip() == "error: the token is not valid"


def test_run_now_respects_max_instances(api: Api, scheduler: subprocess.Popen[str]) -> None:
    body = api.applied("POST", "/api/jobs/wait_async/run", json={"input": {"seconds": 60}})
    first = body["execution_id"]
    wait_for(lambda: api.execution(first)["status"] == "running", 10, "the first run to start")
    second = api.http.post("/api/jobs/wait_async/run", json={"input": {"seconds": 0.1}})
    assert second.status_code == 409
    assert second.json()["status"] == "rejected"
    assert "max_instances" in second.json()["detail"]
    skipped = api.execution(second.json()["execution_id"])
    assert skipped["status"] == "skipped"
    api.applied("POST", f"/api/executions/{first}/cancel")
