"""Health of the service, computed from what the processes wrote to the database.

The API's readiness endpoint and the CLI's `health check` both answer with `check_health`, so
they always agree; neither asks the scheduler process directly.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from app.core.db import session_scope, utcnow
from app.core.job_store import JobInfo, read_jobs
from app.core.models import SchedulerInstance


class DatabaseHealth(BaseModel):
    """Whether the shared database answers."""

    healthy: bool
    detail: str


class SchedulerHealth(BaseModel):
    """The freshest scheduler heartbeat and what it means."""

    healthy: bool
    detail: str
    instance_id: str | None = None
    hostname: str | None = None
    pid: int | None = None
    state: str | None = None
    started_at: datetime | None = None
    last_seen: datetime | None = None
    heartbeat_age_seconds: float | None = None
    job_count: int | None = None


class HealthReport(BaseModel):
    """The overall status and each component's; jobs only when asked for."""

    status: Literal["healthy", "unhealthy"]
    checked_at: datetime
    database: DatabaseHealth
    scheduler: SchedulerHealth
    jobs: list[JobInfo] | None = None

    @property
    def healthy(self) -> bool:
        """True when every component is healthy."""
        return self.status == "healthy"


def _scheduler_health(
    latest: SchedulerInstance | None, stale_after_seconds: float, now: datetime
) -> SchedulerHealth:
    if latest is None:
        return SchedulerHealth(healthy=False, detail="no scheduler has reported a heartbeat yet")
    age = (now - latest.last_seen).total_seconds()
    if latest.state == "stopped":
        healthy, detail = False, f"stopped {age:.0f} s ago"
    elif age > stale_after_seconds:
        healthy = False
        detail = f"last heartbeat {age:.1f} s ago (stale after {stale_after_seconds:g} s)"
    else:
        healthy, detail = True, f"{latest.state}, heartbeat {age:.1f} s ago"
    return SchedulerHealth(
        healthy=healthy,
        detail=detail,
        instance_id=latest.instance_id,
        hostname=latest.hostname,
        pid=latest.pid,
        state=latest.state,
        started_at=latest.started_at,
        last_seen=latest.last_seen,
        heartbeat_age_seconds=round(age, 3),
        job_count=latest.job_count,
    )


def check_health(
    engine: Engine, stale_after_seconds: float, *, include_jobs: bool = False
) -> HealthReport:
    """Check the database and the scheduler heartbeat, and list jobs if asked."""
    now = utcnow()
    jobs: list[JobInfo] | None = None
    try:
        with session_scope(engine) as session:
            session.execute(text("SELECT 1"))
            latest = None
            # A database no scheduler has started against yet has no heartbeat table.
            if inspect(session.connection()).has_table(SchedulerInstance.__tablename__):
                latest = session.scalars(
                    select(SchedulerInstance).order_by(SchedulerInstance.last_seen.desc()).limit(1)
                ).first()
        database = DatabaseHealth(healthy=True, detail="reachable")
        scheduler = _scheduler_health(latest, stale_after_seconds, now)
        if include_jobs:
            jobs = read_jobs(engine)
    except SQLAlchemyError as error:
        # DBAPI errors keep the driver's message in `orig`, without SQLAlchemy's long suffix.
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        database = DatabaseHealth(healthy=False, detail=f"unreachable: {reason}")
        scheduler = SchedulerHealth(healthy=False, detail="unknown: the database is unreachable")
    healthy = database.healthy and scheduler.healthy
    return HealthReport(
        status="healthy" if healthy else "unhealthy",
        checked_at=now,
        database=database,
        scheduler=scheduler,
        jobs=jobs,
    )
