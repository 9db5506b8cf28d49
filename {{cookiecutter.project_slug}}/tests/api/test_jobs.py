"""The API lists jobs from the shared store, as written by a scheduler in another process."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.components.backend.main import create_app
from app.components.scheduler.main import create_scheduler
from app.core.settings import Settings
from tests.helpers import stop


def test_no_jobs_before_the_scheduler_first_starts(settings: Settings, engine: Engine) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/jobs").json() == {"items": [], "total": 0}


def test_unavailable_database_is_a_503_with_the_reason(settings: Settings, tmp_path: Path) -> None:
    missing = settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/none/app.db"})
    with TestClient(create_app(missing)) as client:
        response = client.get("/api/jobs")
    assert response.status_code == 503
    assert response.json() == {
        "detail": "the database is unavailable: unable to open database file"
    }


async def test_lists_stored_jobs(settings: Settings, fresh_engine: Engine) -> None:
    scheduler = create_scheduler(settings, fresh_engine)
    scheduler.start(paused=True)
    scheduler.pause_job("cleanup_old_records")
    expected = {job.id: job.next_run_time for job in scheduler.get_jobs()}
    await stop(scheduler)

    with TestClient(create_app(settings)) as client:
        body = client.get("/api/jobs").json()

    assert body["total"] == len(expected)
    listed = {item["id"]: item for item in body["items"]}
    assert set(listed) == set(expected)
    paused = listed.pop("cleanup_old_records")
    assert paused["paused"] is True
    assert paused["next_run_time"] is None
    for job_id, item in listed.items():
        assert datetime.fromisoformat(item["next_run_time"]) == expected[job_id]
        assert item["paused"] is False
        assert item["trigger"]
    # Soonest first, paused last.
    times = [datetime.fromisoformat(i["next_run_time"]) for i in body["items"][:-1]]
    assert times == sorted(times)
    assert body["items"][-1]["id"] == "cleanup_old_records"
