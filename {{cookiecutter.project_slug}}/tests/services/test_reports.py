"""The daily report summarises the scheduler's day and the jobs' next runs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine

from app.components.scheduler.main import create_scheduler
from app.core.db import utcnow
from app.core.enums import SchedulerState
from app.core.settings import Settings
from app.services.reports import build_daily_report, generate_daily_report
from tests.helpers import stop, write_heartbeat


def backdated(engine: Engine, started: datetime, last_seen: datetime) -> None:
    age = (utcnow() - last_seen).total_seconds()
    write_heartbeat(engine, SchedulerState.STOPPED, age_seconds=age, started_at=started)


def test_uptime_is_clipped_to_the_day(engine: Engine) -> None:
    day = date(2026, 3, 10)
    midnight = datetime(2026, 3, 10, tzinfo=UTC)
    # 22:00 the day before until 01:30: 1.5 h fall on the day.
    backdated(engine, midnight - timedelta(hours=2), midnight + timedelta(hours=1, minutes=30))
    # 12:00 until 12:10.
    backdated(engine, midnight + timedelta(hours=12), midnight + timedelta(hours=12, minutes=10))
    # 23:00 until 02:00 the next day: 1 h falls on the day.
    backdated(engine, midnight + timedelta(hours=23), midnight + timedelta(hours=26))
    # Entirely the day after.
    backdated(engine, midnight + timedelta(hours=30), midnight + timedelta(hours=31))

    report = build_daily_report(engine, day)

    assert report["day"] == "2026-03-10"
    assert report["scheduler"]["instances"] == 3
    assert report["scheduler"]["uptime_seconds"] == 90 * 60 + 10 * 60 + 60 * 60


async def test_report_file_lists_the_jobs(settings: Settings, engine: Engine) -> None:
    scheduler = create_scheduler(settings=settings, engine=engine)
    scheduler.start(paused=True)
    job_ids = {job.id for job in scheduler.get_jobs()}
    await stop(scheduler)
    write_heartbeat(engine)

    path = generate_daily_report(utcnow().date())

    assert path == settings.data_dir / "reports" / f"daily-{utcnow().date().isoformat()}.json"
    report = json.loads(path.read_text())
    assert report["scheduler"]["instances"] == 1
    assert {job["id"] for job in report["jobs"]} == job_ids
    assert all(job["next_run_time"] for job in report["jobs"])


def test_default_day_is_yesterday(settings: Settings, engine: Engine) -> None:
    path = generate_daily_report()
    yesterday = (utcnow() - timedelta(days=1)).date().isoformat()
    assert path.name == f"daily-{yesterday}.json"
    assert json.loads(path.read_text())["scheduler"]["instances"] == 0
