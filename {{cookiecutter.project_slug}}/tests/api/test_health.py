"""Liveness is cheap; readiness follows the database and the scheduler's heartbeat."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.components.backend.main import create_app
from app.core.settings import Settings
from tests.helpers import write_heartbeat


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
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
    write_heartbeat(engine, state="stopped")
    response = client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["scheduler"]["detail"].startswith("stopped")


def test_latest_instance_decides(client: TestClient, engine: Engine) -> None:
    write_heartbeat(engine, state="stopped", age_seconds=60)
    write_heartbeat(engine)
    assert client.get("/health/ready").status_code == 200
