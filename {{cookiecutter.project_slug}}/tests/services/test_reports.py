"""The daily report summarises the scheduler's day and the jobs' next runs."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import Engine

from app.components.scheduler.main import create_scheduler
from app.core.db import utcnow
from app.core.settings import Settings
from app.services.reports import generate_daily_report
from tests.helpers import write_heartbeat


async def test_report_covers_the_day_and_lists_jobs(settings: Settings, engine: Engine) -> None:
    scheduler = create_scheduler(settings, engine)
    scheduler.start(paused=True)
    scheduler.shutdown(wait=False)
    write_heartbeat(engine)
    write_heartbeat(engine, state="stopped", age_seconds=3 * 86400)

    path = generate_daily_report(utcnow().date())

    assert path == settings.data_dir / "reports" / f"daily-{utcnow().date().isoformat()}.json"
    report = json.loads(path.read_text())
    assert report["scheduler"]["instances"] == 1
    assert report["scheduler"]["uptime_seconds"] >= 0
    assert {job["id"] for job in report["jobs"]} >= {"daily_report", "system_maintenance"}
    assert all(job["next_run_time"] for job in report["jobs"])


def test_default_day_is_yesterday(settings: Settings, engine: Engine) -> None:
    path = generate_daily_report()
    yesterday = (utcnow() - timedelta(days=1)).date().isoformat()
    assert path.name == f"daily-{yesterday}.json"
    assert json.loads(path.read_text())["scheduler"]["instances"] == 0
