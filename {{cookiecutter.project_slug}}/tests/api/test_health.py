"""Liveness is cheap; readiness follows the database and the scheduler's heartbeat."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, text, update

from app.components.backend.main import create_app
from app.core.db import utcnow
from app.core.enums import SchedulerState
from app.core.health import check_health
from app.core.models import SchedulerLease
from app.core.settings import Settings
from tests.helpers import write_heartbeat


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The API on a database the scheduler has created (the `engine` fixture does that)."""
    with TestClient(create_app(settings)) as client:
        yield client


def test_liveness(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_not_ready_before_any_heartbeat(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["database"]["healthy"] is True
    assert body["scheduler"]["detail"] == "no scheduler has reported a heartbeat yet"


def test_ready_with_a_fresh_heartbeat(client: TestClient, engine: Engine) -> None:
    heartbeat = write_heartbeat(engine)
    response = client.get("/health/ready")
    assert response.status_code == 200
    scheduler = response.json()["scheduler"]
    assert scheduler["healthy"] is True
    assert scheduler["instance_id"] == heartbeat.instance_id
    assert scheduler["pid"] == heartbeat.pid
    assert 0 <= scheduler["heartbeat_age_seconds"] < 3


def test_stale_heartbeat_is_not_ready(client: TestClient, engine: Engine) -> None:
    write_heartbeat(engine, age_seconds=10)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert "stale after 3 s" in response.json()["scheduler"]["detail"]


def test_stopped_scheduler_is_not_ready(client: TestClient, engine: Engine) -> None:
    write_heartbeat(engine, state=SchedulerState.STOPPED)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["scheduler"]["detail"].startswith("stopped")


def test_missing_database_file_is_named(settings: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "app.db"
    elsewhere = settings.model_copy(update={"database_url": f"sqlite:///{missing}"})
    with TestClient(create_app(elsewhere)) as client:
        response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["database"]["detail"] == (
        f"unreachable: database file {missing} does not exist: the scheduler creates it when it "
        "first starts (relative paths are read from the working directory)"
    )
    assert not missing.parent.exists()


def test_the_lease_holder_is_the_leader(client: TestClient, engine: Engine) -> None:
    leader = write_heartbeat(engine)
    # Reports running, but the lease is the first one's: it does not lead.
    other = write_heartbeat(engine)
    response = client.get("/health/ready")
    assert response.status_code == 200
    scheduler = response.json()["scheduler"]
    assert scheduler["leader"] == scheduler["instance_id"] == leader.instance_id
    assert scheduler["epoch"] == 1
    assert 0 < scheduler["lease_expires_in_seconds"] <= 10
    assert "lease epoch 1 ends in" in scheduler["detail"]
    flags = {item["instance_id"]: item["leader"] for item in scheduler["instances"]}
    assert flags == {leader.instance_id: True, other.instance_id: False}


def test_an_ended_lease_is_not_ready(client: TestClient, engine: Engine) -> None:
    write_heartbeat(engine)
    with engine.begin() as connection:
        connection.execute(
            update(SchedulerLease).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = client.get("/health/ready")
    assert response.status_code == 503
    scheduler = response.json()["scheduler"]
    assert scheduler["detail"] == "no scheduler holds the lease"
    assert scheduler["leader"] is None


def test_standby_alone_is_unhealthy_and_counted(client: TestClient, engine: Engine) -> None:
    write_heartbeat(engine, state=SchedulerState.STANDBY)
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert "waits on standby" in response.json()["scheduler"]["detail"]
    write_heartbeat(engine)
    body = client.get("/health/ready").json()
    assert body["status"] == "healthy"
    assert body["scheduler"]["standby_instances"] == 1


def test_latest_instance_decides(client: TestClient, engine: Engine) -> None:
    write_heartbeat(engine, state=SchedulerState.STOPPED, age_seconds=60)
    write_heartbeat(engine)
    assert client.get("/health/ready").status_code == 200


def test_a_schema_behind_the_code_is_not_ready(client: TestClient, engine: Engine) -> None:
    write_heartbeat(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    body = client.get("/health/ready").json()
    assert body["database"]["healthy"] is False
    assert "revision f00d, which this code does not know" in body["database"]["detail"]


def test_database_without_a_schema_says_who_creates_it(
    settings: Settings, fresh_engine: Engine
) -> None:
    fresh_engine.connect().close()
    with TestClient(create_app(settings)) as client:
        body = client.get("/health/ready").json()
    assert body["database"]["healthy"] is False
    assert "the scheduler creates it when it starts" in body["database"]["detail"]


def test_a_heartbeat_written_during_the_check_is_never_aged_negative(
    settings: Settings, engine: Engine
) -> None:
    heartbeat = write_heartbeat(engine)
    beats_left = 1

    def beat_before_the_first_read(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # The scheduler writes between the check's start and its reads: a clock read before
        # the rows would be older than the heartbeat it then ages.
        nonlocal beats_left
        clock = any(word in statement for word in ("BEGIN", "now()", "clock_timestamp()"))
        if beats_left and not clock:
            beats_left = 0
            heartbeat.beat(SchedulerState.RUNNING, job_count=3)

    event.listen(engine, "before_cursor_execute", beat_before_the_first_read)
    try:
        report = check_health(engine, settings.heartbeat_stale_after_seconds)
    finally:
        event.remove(engine, "before_cursor_execute", beat_before_the_first_read)
    assert beats_left == 0
    [instance] = report.scheduler.instances
    assert instance.heartbeat_age_seconds >= 0
    assert report.scheduler.heartbeat_age_seconds is not None
    assert report.scheduler.heartbeat_age_seconds >= 0


def test_times_are_written_in_one_iso_form(client: TestClient, engine: Engine) -> None:
    write_heartbeat(engine)
    body = client.get("/health/ready").json()
    form = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    for moment in (
        body["checked_at"],
        body["scheduler"]["last_seen"],
        body["scheduler"]["lease_expires_at"],
        body["scheduler"]["instances"][0]["started_at"],
    ):
        assert form.match(moment), moment
