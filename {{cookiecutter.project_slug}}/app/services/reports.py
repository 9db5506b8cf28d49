"""The daily report: what the scheduler did over one day, written as a JSON file."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from app.core.db import get_engine, session_scope, utcnow
from app.core.files import write_json_atomically
from app.core.job_rows import read_jobs
from app.core.models import SchedulerInstance
from app.core.settings import get_settings


def build_daily_report(engine: Engine, day: date) -> dict[str, Any]:
    """The report's content for `day` (UTC): scheduler uptime and the jobs' next runs."""
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    with session_scope(engine) as session:
        instances = session.scalars(
            select(SchedulerInstance)
            .where(SchedulerInstance.started_at < end, SchedulerInstance.last_seen >= start)
            .order_by(SchedulerInstance.started_at)
        ).all()
    uptime = sum(
        (min(i.last_seen, end) - max(i.started_at, start)).total_seconds() for i in instances
    )
    return {
        "day": day.isoformat(),
        "generated_at": utcnow().isoformat(),
        "scheduler": {
            "instances": len(instances),
            "uptime_seconds": round(uptime),
            "hosts": sorted({i.hostname for i in instances}),
        },
        "jobs": [job.model_dump(mode="json") for job in read_jobs(engine, get_settings().timezone)],
    }


def generate_daily_report(
    day: date | None = None, *, engine: Engine | None = None, report_dir: Path | None = None
) -> Path:
    """Write the report for `day` (default: yesterday, UTC) and return its path."""
    day = day or (utcnow().date() - timedelta(days=1))
    report_dir = report_dir or get_settings().data_dir / "reports"
    path = report_dir / f"daily-{day.isoformat()}.json"
    write_json_atomically(path, build_daily_report(engine or get_engine(), day))
    return path
