"""The management API against a real database, with no scheduler running.

Changes are stored as commands and the answer says so (202); everything that can be judged
without the scheduler (auth, unknown ids, bad input, wrong state) is judged here. The tests in
`tests/test_management_processes.py` run the same API against a running scheduler.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from app import ENV_PREFIX
from app.components.backend.main import create_app
from app.core.db import session_scope, utcnow
from app.core.enums import ExecutionStatus, TriggerKind
from app.core.models import Job, JobExecution
from app.core.settings import Settings
from tests.conftest import TEST_TOKEN

AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=AUTH) as test_client:
        yield test_client


def management_routes(settings: Settings) -> list[tuple[str, str]]:
    """Every management operation, from the OpenAPI document the API publishes."""
    paths = create_app(settings).openapi()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "some_id", path))
        for path, operations in paths.items()
        if path.startswith("/api")
        for method in operations
    ]


def test_every_management_endpoint_needs_the_token(settings: Settings, engine: Engine) -> None:
    routes = management_routes(settings)
    assert len(routes) >= 14
    with TestClient(create_app(settings)) as anonymous:
        for method, path in routes:
            missing = anonymous.request(method, path)
            assert missing.status_code == 401, (method, path)
            assert missing.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer" in missing.json()["detail"]
            wrong = anonymous.request(method, path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 403, (method, path)
            assert wrong.json() == {"detail": "the token is not valid"}
            assert TEST_TOKEN not in missing.text + wrong.text


def test_health_stays_open(client: TestClient) -> None:
    assert client.get("/health", headers={"Authorization": ""}).status_code == 200


def test_without_a_configured_token_the_api_is_disabled(settings: Settings, engine: Engine) -> None:
    unset = settings.model_copy(update={"api_token": None})
    with TestClient(create_app(unset), headers=AUTH) as client:
        response = client.get("/api/jobs")
    assert response.status_code == 503
    assert response.json() == {
        "detail": f"the management API is disabled: set {ENV_PREFIX}API_TOKEN"
    }


def test_short_token_is_refused_at_start(settings: Settings) -> None:
    with pytest.raises(ValueError, match=r"api_token\n.*at least 16 characters"):
        Settings(api_token="short")


def test_unavailable_database_is_a_503_with_the_reason(settings: Settings, tmp_path: Path) -> None:
    missing = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/none/app.db"})
    with TestClient(create_app(missing), headers=AUTH) as client:
        response = client.get("/api/jobs")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "the database is unavailable: unable to open database file"
    }


def test_code_jobs_are_listed_before_any_scheduler_ran(
    client: TestClient, settings: Settings
) -> None:
    body = client.get("/api/jobs").json()
    assert body["total"] == len(body["items"]) > 0
    assert {job["state"] for job in body["items"]} == {"unscheduled"}
    assert all(job["origin"] == "code" for job in body["items"])


def test_listing_filters_and_pages(client: TestClient, registered: list[str]) -> None:
    everything = client.get("/api/jobs").json()
    assert everything["total"] == len(registered)
    first = client.get("/api/jobs", params={"limit": 1}).json()
    second = client.get("/api/jobs", params={"limit": 1, "offset": 1}).json()
    assert first["total"] == second["total"] == len(registered)
    assert [first["items"][0]["id"], second["items"][0]["id"]] == [
        job["id"] for job in everything["items"][:2]
    ]
    low = client.get("/api/jobs", params={"queue": "low"}).json()
    assert low["items"]
    assert {job["queue"] for job in low["items"]} == {"low"}
    assert client.get("/api/jobs", params={"state": "paused"}).json()["total"] == 0
    for bad in ({"limit": 0}, {"offset": -1}, {"state": "sleeping"}, {"queue": "urgent"}):
        response = client.get("/api/jobs", params=bad)
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"] == ["query", next(iter(bad))]


def test_job_detail(client: TestClient, registered: list[str]) -> None:
    job = client.get("/api/jobs/cleanup_old_records").json()
    assert job["state"] == "scheduled"
    assert job["next_run_time"]
    assert job["function"] == "cleanup_old_records"
    assert job["last_run"] is None
    assert job["success_rate"] is None
    assert job["retry_attempts"] == 3


def test_success_rate_and_last_run_come_from_the_history(
    client: TestClient, engine: Engine, registered: list[str]
) -> None:
    statuses = [ExecutionStatus.SUCCEEDED] * 3 + [ExecutionStatus.FAILED, ExecutionStatus.MISSED]
    now = utcnow()
    with session_scope(engine) as session:
        for minutes, status in enumerate(statuses):
            session.add(execution_row(f"run{minutes}", status, now + timedelta(minutes=minutes)))
    job = client.get("/api/jobs/cleanup_old_records").json()
    # Missed runs did not run, so they do not count for or against the job.
    assert job["runs_counted"] == 4
    assert job["success_rate"] == 0.75
    assert job["last_run"]["execution_id"] == "run4"
    assert job["last_run"]["status"] == "missed"


def execution_row(
    execution_id: str,
    status: ExecutionStatus,
    scheduled_at: object = None,
    job_id: str = "cleanup_old_records",
) -> JobExecution:
    moment = scheduled_at or utcnow()
    return JobExecution(
        id=execution_id,
        job_id=job_id,
        queue="low",
        scheduled_at=moment,
        started_at=moment,
        finished_at=moment,
        status=status,
        attempt=1,
        trigger_kind=TriggerKind.SCHEDULE,
        instance_id="test",
    )


def test_unknown_ids_are_404(client: TestClient, registered: list[str]) -> None:
    for method, path in [
        ("GET", "/api/jobs/nope"),
        ("POST", "/api/jobs/nope/run"),
        ("POST", "/api/jobs/nope/pause"),
        ("POST", "/api/jobs/nope/resume"),
        ("DELETE", "/api/jobs/nope"),
        ("GET", "/api/jobs/nope/executions"),
        ("GET", "/api/executions/nope"),
        ("POST", "/api/executions/nope/retry"),
        ("POST", "/api/executions/nope/cancel"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, (method, path)
        assert "nope" in response.json()["detail"]
    response = client.put(
        "/api/jobs/nope/schedule", json={"schedule": {"kind": "interval", "minutes": 5}}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("schedule", "field", "message"),
    [
        ({"kind": "cron", "expression": "* * *"}, "expression", "has 3 fields; expected 5"),
        ({"kind": "cron", "expression": "61 * * * *"}, "expression", "61"),
        ({"kind": "cron", "expression": "0 6 * * 8"}, "expression", "not a weekday"),
        (
            {"kind": "cron", "expression": "0 6 * * *", "timezone": "Mars/Olympus"},
            "timezone",
            "not an IANA time zone",
        ),
        ({"kind": "interval"}, "interval", "give a positive period"),
        ({"kind": "interval", "minutes": -5}, "minutes", "greater than or equal to 0"),
        # Each part within its bound, their sum not (found by the API fuzzing).
        (
            {"kind": "interval", "days": 99999, "hours": 895529},
            "interval",
            "the period adds up to 11863818000 s: at most 8,640,000,000 s",
        ),
        ({"kind": "weekly"}, "schedule", "kind"),
    ],
)
def test_invalid_schedules_are_422_naming_the_field(
    client: TestClient,
    registered: list[str],
    schedule: dict[str, object],
    field: str,
    message: str,
) -> None:
    response = client.put("/api/jobs/cleanup_old_records/schedule", json={"schedule": schedule})
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert any(
        field in [str(part) for part in problem["loc"]] and message in problem["msg"]
        for problem in problems
    ) or any(message in problem["msg"] for problem in problems), problems


def test_invalid_run_input_is_422_naming_the_argument(
    client: TestClient, registered: list[str]
) -> None:
    response = client.post("/api/jobs/cleanup_old_records/run", json={"input": {"days": 3}})
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "input", "days"]
    assert "does not take it" in problem["msg"]
    response = client.post("/api/jobs/cleanup_old_records/run", json={"input": [1]})
    assert response.status_code == 422


def test_without_a_scheduler_a_change_is_stored_and_says_so(
    client: TestClient, engine: Engine, registered: list[str]
) -> None:
    response = client.post("/api/jobs/cleanup_old_records/pause")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert body["detail"] == (
        "no scheduler is running: the change is stored and applies when it starts"
    )
    # A row change, not a command: the job is paused in the table at once.
    assert body["command_id"] is None
    assert (body["job"]["state"], body["job"]["version"]) == ("paused", 2)
    with session_scope(engine) as session:
        row = session.get_one(Job, "cleanup_old_records")
        assert (row.paused, row.version) == (True, 2)
    status = client.get("/api/scheduler/status").json()
    assert (status["job_revision"], status["applied_revision"]) == (body["revision"], 0)


def test_the_status_counts_a_days_runs_and_every_unfinished_one(
    client: TestClient, engine: Engine, registered: list[str]
) -> None:
    now = utcnow()
    two_days_ago = now - timedelta(days=2)
    with session_scope(engine) as session:
        for number, status in enumerate(
            [ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT]
        ):
            session.add(execution_row(f"today{number}", status, now - timedelta(hours=1)))
        # Older than the day: a run still pending or running counts, one that ended does not.
        session.add(execution_row("old_pending", ExecutionStatus.PENDING, two_days_ago))
        session.add(execution_row("old_running", ExecutionStatus.RUNNING, two_days_ago))
        session.add(execution_row("old_failed", ExecutionStatus.FAILED, two_days_ago))
        critical = execution_row("critical", ExecutionStatus.SUCCEEDED, now)
        critical.queue = "critical"
        session.add(critical)
    queues = {q["queue"]: q for q in client.get("/api/scheduler/status").json()["queues"]}
    assert {name: queues[name]["succeeded"] for name in queues} == {
        "critical": 1,
        "default": 0,
        "low": 1,
    }
    low = queues["low"]
    # A run that timed out is counted as failed.
    assert (low["pending"], low["running"], low["failed"]) == (1, 1, 2)


def test_run_now_records_a_pending_execution_at_once(
    client: TestClient, registered: list[str]
) -> None:
    response = client.post("/api/jobs/cleanup_old_records/run")
    assert response.status_code == 202
    execution_id = response.json()["execution_id"]
    execution = client.get(f"/api/executions/{execution_id}").json()
    assert execution["status"] == "pending"
    assert execution["trigger_kind"] == "manual"
    status = client.get("/api/scheduler/status").json()
    assert {q["queue"]: q["pending"] for q in status["queues"]}["low"] == 1
    assert status["pending_commands"] == 1
    assert status["healthy"] is False


def test_wrong_state_is_409_with_the_reason(
    client: TestClient, engine: Engine, registered: list[str]
) -> None:
    response = client.post("/api/jobs/cleanup_old_records/resume")
    assert response.status_code == 409
    assert response.json() == {"detail": "job 'cleanup_old_records' is not paused"}
    response = client.delete("/api/jobs/cleanup_old_records")
    assert response.status_code == 409
    assert "defined in code" in response.json()["detail"]
    assert "pause it" in response.json()["detail"]
    with session_scope(engine) as session:
        session.add(execution_row("done", ExecutionStatus.SUCCEEDED))
    response = client.post("/api/executions/done/retry")
    assert response.status_code == 409
    assert "execution done succeeded: only a run that ended" in response.json()["detail"]
    response = client.post("/api/executions/done/cancel")
    assert response.status_code == 409
    assert "execution done succeeded: it has ended" in response.json()["detail"]


def test_retry_of_a_failed_run_keeps_its_input(
    client: TestClient, engine: Engine, registered: list[str]
) -> None:
    with session_scope(engine) as session:
        session.add(execution_row("broken", ExecutionStatus.FAILED))
    response = client.post("/api/executions/broken/retry")
    assert response.status_code == 202
    retry = client.get(f"/api/executions/{response.json()['execution_id']}").json()
    assert retry["retry_of"] == "broken"
    assert retry["trigger_kind"] == "retry"
    assert retry["status"] == "pending"


def test_adding_a_runtime_job_checks_everything(
    client: TestClient, engine: Engine, registered: list[str]
) -> None:
    job = {
        "id": "extra_cleanup",
        "name": "Extra cleanup",
        "function": "cleanup_old_records",
        "schedule": {"kind": "interval", "hours": 2},
    }
    response = client.post("/api/jobs", json={**job, "function": "os.system"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "function"]
    assert "not a registered job function" in response.json()["detail"][0]["msg"]
    response = client.post("/api/jobs", json={**job, "args": {"engine": "x"}})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "args", "engine"]
    response = client.post("/api/jobs", json={**job, "id": "Bad Id"})
    assert response.status_code == 422
    response = client.post("/api/jobs", json={**job, "id": "cleanup_old_records"})
    assert response.status_code == 409
    past = {"kind": "once", "at": (utcnow() - timedelta(hours=1)).isoformat()}
    response = client.post("/api/jobs", json={**job, "schedule": past})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "schedule", "at"]

    response = client.post("/api/jobs", json={**job, "priority": 101})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "priority"]

    response = client.post("/api/jobs", json={**job, "priority": 7})
    assert response.status_code == 202
    listed = client.get("/api/jobs/extra_cleanup").json()
    assert listed["origin"] == "runtime"
    assert listed["priority"] == 7
    # Stored with its next run: the next scheduler to start runs it then.
    assert (listed["state"], listed["version"]) == ("scheduled", 1)
    assert listed["next_run_time"] is not None
    assert client.post("/api/jobs", json=job).status_code == 409
    assert client.delete("/api/jobs/extra_cleanup").status_code == 202
    assert client.get("/api/jobs/extra_cleanup").status_code == 404


def test_functions_are_listed_with_their_inputs(client: TestClient) -> None:
    functions = {f["name"]: f["inputs"] for f in client.get("/api/functions").json()}
    assert "cleanup_old_records" in functions
    assert all(isinstance(inputs, dict) for inputs in functions.values())


def test_executions_filter_by_status_and_time(
    client: TestClient, engine: Engine, registered: list[str]
) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        session.add(execution_row("old", ExecutionStatus.FAILED, now - timedelta(days=2)))
        session.add(execution_row("new", ExecutionStatus.SUCCEEDED, now))
    path = "/api/jobs/cleanup_old_records/executions"
    assert [e["id"] for e in client.get(path).json()["items"]] == ["new", "old"]
    failed = client.get(path, params={"status": "failed"}).json()
    assert [e["id"] for e in failed["items"]] == ["old"]
    recent = client.get(path, params={"since": (now - timedelta(hours=1)).isoformat()}).json()
    assert [e["id"] for e in recent["items"]] == ["new"]
    naive = client.get(path, params={"since": "2026-01-01T00:00:00"})
    assert naive.status_code == 422
    assert naive.json()["detail"][0]["loc"] == ["query", "since"]
    with session_scope(engine) as session:
        assert session.scalar(select(JobExecution.status).where(JobExecution.id == "old"))


def test_a_job_on_cron_fields_is_listed_and_changed(
    client: TestClient, registered: list[str]
) -> None:
    # A spec holding a dict: the cached description must not need to hash it.
    added = {
        "id": "by_fields",
        "name": "By fields",
        "function": "cleanup_old_records",
        "schedule": {"kind": "cron_fields", "fields": {"minute": 5, "hour": "*/2"}},
    }
    assert client.post("/api/jobs", json=added).status_code == 202
    listed = {job["id"]: job for job in client.get("/api/jobs").json()["items"]}
    assert listed["by_fields"]["trigger"].startswith('cron "5 */2 * * *"')
    assert client.post("/api/jobs/by_fields/pause").status_code == 202


def test_a_job_on_the_longest_interval_is_listed_and_shown(
    client: TestClient, registered: list[str]
) -> None:
    longest = {"schedule": {"kind": "interval", "days": 99_999}}
    assert client.put("/api/jobs/cleanup_old_records/schedule", json=longest).status_code == 202
    assert client.get("/api/jobs").status_code == 200
    job = client.get("/api/jobs/cleanup_old_records").json()
    assert job["trigger"].startswith("every")
    assert 1 <= len(job["next_fires"]) <= 10
