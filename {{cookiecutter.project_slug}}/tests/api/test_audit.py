"""Who may do what, and the record of what was done: the read-only token and the audit log.

Every change (pause, resume, reschedule, add, delete, run now, retry, cancel) made through the
API or the CLI goes through `Management`, which writes an audit entry in the change's own
transaction. `tests/test_management_processes.py` checks that a running scheduler settles
the outcome.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from app import ENV_PREFIX
from app.cli.main import app as cli_app
from app.components.backend.main import create_app
from app.core.db import session_scope, utcnow
from app.core.enums import ExecutionStatus
from app.core.models import AuditEntry
from app.core.settings import Settings
from app.services.retention import cleanup_old_records
from tests.api.test_management import AUTH, execution_row, management_routes
from tests.conftest import TEST_TOKEN

READ_TOKEN = "read-only-token-" + "r" * 24
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
JOB = "cleanup_old_records"


@pytest.fixture
def with_reader(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_read_token": SecretStr(READ_TOKEN)})


@pytest.fixture
def client(with_reader: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(with_reader), headers=AUTH) as test_client:
        yield test_client


def entries(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/audit", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_the_read_only_token_reads_everything_and_changes_nothing(
    with_reader: Settings, client: TestClient, registered: list[str]
) -> None:
    routes = management_routes(with_reader)
    reads = [(method, path) for method, path in routes if method == "GET"]
    changes = [(method, path) for method, path in routes if method != "GET"]
    assert len(reads) >= 6
    assert len(changes) >= 8
    reader = TestClient(create_app(with_reader), headers=READ)
    with reader:
        for method, path in changes:
            refused = reader.request(method, path, json={})
            assert refused.status_code == 403, (method, path)
            assert f"{ENV_PREFIX}API_READ_TOKEN" in refused.json()["detail"]
            assert READ_TOKEN not in refused.text
        for method, path in reads:
            # Judged past the token: found or not, never refused for it.
            assert reader.request(method, path).status_code not in (401, 403), (method, path)
        assert reader.get("/api/jobs").status_code == 200
        assert reader.get(f"/api/jobs/{JOB}").json()["id"] == JOB
    # Nothing the reader tried was recorded: none of it happened.
    assert entries(client) == []


def test_the_read_only_token_must_differ_from_the_operator_token(settings: Settings) -> None:
    with pytest.raises(ValidationError, match="must differ from api_token"):
        Settings(api_token=TEST_TOKEN, api_read_token=TEST_TOKEN)
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(api_read_token="short")


def test_every_change_is_recorded_with_who_what_before_and_after(
    client: TestClient, engine: Engine, registered: list[str]
) -> None:
    assert client.post(f"/api/jobs/{JOB}/pause").status_code == 202
    assert client.post(f"/api/jobs/{JOB}/resume").status_code == 202
    schedule = {"schedule": {"kind": "interval", "hours": 3}}
    assert client.put(f"/api/jobs/{JOB}/schedule", json=schedule).status_code == 202
    added = {
        "id": "extra",
        "name": "Extra",
        "function": JOB,
        "schedule": {"kind": "interval", "hours": 2},
    }
    assert client.post("/api/jobs", json=added).status_code == 202
    assert client.delete("/api/jobs/extra").status_code == 202
    run = client.post(f"/api/jobs/{JOB}/run", json={"input": {}}).json()
    with session_scope(engine) as session:
        session.add(execution_row("broken", ExecutionStatus.FAILED))
    retry = client.post("/api/executions/broken/retry").json()
    assert client.post(f"/api/executions/{run['execution_id']}/cancel").status_code == 202
    # A refused change changed nothing, so it is not an entry.
    assert client.post(f"/api/jobs/{JOB}/resume").status_code == 409

    log = entries(client)
    assert [entry["action"] for entry in reversed(log)] == [
        "pause",
        "resume",
        "reschedule",
        "add",
        "delete",
        "run",
        "retry",
        "cancel",
    ]
    assert {entry["actor_kind"] for entry in log} == {"api_token"}
    assert {entry["actor"] for entry in log} == {"operator token"}
    # No scheduler runs here: each change is stored, and its entry stays pending.
    assert {entry["outcome"] for entry in log} == {"pending"}
    assert all("no scheduler is running" in entry["detail"] for entry in log)
    by_action = {entry["action"]: entry for entry in log}

    pause = by_action["pause"]
    assert (pause["before"]["paused"], pause["after"]["paused"]) == (False, True)
    assert pause["job_id"] == JOB
    assert pause["after"]["next_run_at"] is not None
    resume = by_action["resume"]
    assert (resume["before"]["paused"], resume["after"]["paused"]) == (True, False)
    assert resume["after"]["version"] == resume["before"]["version"] + 1
    reschedule = by_action["reschedule"]
    assert reschedule["after"]["schedule"]["hours"] == 3
    assert reschedule["before"]["schedule"] != reschedule["after"]["schedule"]
    assert by_action["add"]["before"] is None
    assert by_action["add"]["after"]["function"] == JOB
    assert by_action["delete"]["job_id"] == "extra"
    assert by_action["delete"]["before"]["name"] == "Extra"
    assert by_action["delete"]["after"] is None
    assert by_action["run"]["execution_id"] == run["execution_id"]
    assert by_action["run"]["after"] == {"execution_id": run["execution_id"], "input": {}}
    assert by_action["retry"]["after"]["retry_of"] == "broken"
    assert by_action["retry"]["execution_id"] == retry["execution_id"]
    assert by_action["cancel"]["before"] == {"status": "pending"}

    assert [entry["action"] for entry in entries(client, job_id="extra")] == ["delete", "add"]
    assert [entry["action"] for entry in entries(client, action="pause")] == ["pause"]
    page = client.get("/api/audit", params={"limit": 3, "offset": 3}).json()
    assert (page["total"], len(page["items"])) == (8, 3)
    assert page["items"][0]["id"] == log[3]["id"]


def test_the_cli_records_its_changes_as_the_local_user_and_lists_the_log(
    registered: list[str],
) -> None:
    runner = CliRunner()
    paused = runner.invoke(cli_app, ["jobs", "pause", JOB, "--yes"], env={"COLUMNS": "200"})
    assert paused.exit_code == 0, paused.output
    shown = runner.invoke(cli_app, ["audit"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "Audit log (1)" in shown.output
    assert "When (UTC)" in shown.output
    assert "pause" in shown.output
    assert "paused: false -> true" in shown.output
    listed = runner.invoke(cli_app, ["audit", "--json", "--job", JOB])
    assert listed.exit_code == 0, listed.output
    [entry] = json.loads(listed.output)["items"]
    assert entry["actor_kind"] == "cli"
    assert "@" in entry["actor"]
    assert entry["action"] == "pause"
    resumed = runner.invoke(cli_app, ["jobs", "resume", JOB, "--yes"])
    assert resumed.exit_code == 0, resumed.output
    shown = runner.invoke(cli_app, ["audit", "--action", "resume"], env={"COLUMNS": "250"})
    assert "paused: true -> false" in shown.output
    assert "Audit log (1)" in shown.output


def test_retention_prunes_the_audit_log_like_the_history(
    client: TestClient, engine: Engine, registered: list[str]
) -> None:
    assert client.post(f"/api/jobs/{JOB}/pause").status_code == 202
    assert client.post(f"/api/jobs/{JOB}/resume").status_code == 202
    old, recent = sorted(entry["id"] for entry in entries(client))
    with session_scope(engine) as session:
        session.get_one(AuditEntry, old).at = utcnow() - timedelta(days=40)
    result = cleanup_old_records(engine, retention=timedelta(days=30))
    assert result.audit_entries == 1
    with session_scope(engine) as session:
        assert list(session.scalars(select(AuditEntry.id))) == [recent]
