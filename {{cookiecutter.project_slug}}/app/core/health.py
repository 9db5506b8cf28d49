"""Health of the service, computed from what the processes wrote to the database.

The API's readiness endpoint and the CLI's `health check` both answer with `check_health`, so
they always agree; neither asks the scheduler process directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, Field
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.core.db import database_now, session_scope, sqlite_path, tables_exist, utcnow
from app.core.enums import SchedulerState, WorkerState
from app.core.job_rows import JobInfo, read_jobs
from app.core.lease_state import LeaseState, read_lease
from app.core.migrations import schema_problem
from app.core.models import SchedulerInstance, WorkerProcess
from app.core.text import first_line
from app.core.times import UtcTime
from app.core.workers import WorkersHealth, read_workers

# Newest first; older rows belong to processes long gone. (Built once: readiness is asked
# every few seconds.)
_LATEST_INSTANCES = select(SchedulerInstance).order_by(SchedulerInstance.last_seen.desc()).limit(20)


class DatabaseHealth(BaseModel):
    """Whether the shared database answers, with the schema this code needs."""

    healthy: bool
    detail: str


class InstanceInfo(BaseModel):
    """A scheduler process, from its heartbeat."""

    instance_id: str
    hostname: str
    pid: int
    state: SchedulerState
    started_at: UtcTime
    last_seen: UtcTime
    heartbeat_age_seconds: float
    fresh: bool
    job_count: int = Field(
        description="Jobs in its timer: the code's, and the runtime jobs due within the horizon."
    )
    applied_revision: int = Field(description="The job revision this instance has applied.")
    leader: bool = Field(description="Whether this instance holds the current lease.")


class SchedulerHealth(BaseModel):
    """Who leads, under which lease, and the heartbeat of the instance the verdict is about."""

    healthy: bool
    detail: str
    instance_id: str | None = None
    hostname: str | None = None
    pid: int | None = None
    state: SchedulerState | None = None
    started_at: UtcTime | None = None
    last_seen: UtcTime | None = None
    heartbeat_age_seconds: float | None = None
    job_count: int | None = None
    standby_instances: int = 0
    leader: str | None = Field(None, description="The instance holding the current lease.")
    epoch: int | None = Field(None, description="The lease's epoch, raised by each new leader.")
    lease_expires_at: UtcTime | None = Field(
        None, description="When the lease ends unless its holder renews it (database clock)."
    )
    lease_expires_in_seconds: float | None = None
    instances: list[InstanceInfo] = Field(
        default_factory=list, description="The instances heard from recently, newest first."
    )


class HealthReport(BaseModel):
    """The overall status and each component's; jobs only when asked for."""

    status: Literal["healthy", "unhealthy"]
    checked_at: UtcTime
    database: DatabaseHealth
    scheduler: SchedulerHealth
    workers: WorkersHealth | None = Field(
        None, description="With worker processes: whether every queue has one, and its load."
    )
    jobs: list[JobInfo] | None = None

    @property
    def healthy(self) -> bool:
        """True when every component is healthy."""
        return self.status == "healthy"


def _age(instance: SchedulerInstance | WorkerProcess, now: datetime) -> float:
    # `now` is read after the rows; only a wall clock stepped back (SQLite's clock is the
    # host's) could still put a heartbeat after it.
    return max(0.0, (now - instance.last_seen).total_seconds())


def _current(lease: LeaseState | None, now: datetime) -> LeaseState | None:
    """The lease if it is held and has not ended."""
    if lease is None or lease.holder is None or lease.expires_at is None:
        return None
    return lease if lease.expires_at > now else None


def _judge(
    instances: Sequence[SchedulerInstance],
    lease: LeaseState | None,
    stale_after: float,
    now: datetime,
) -> tuple[bool, str, SchedulerInstance | None]:
    """Healthy or not, why, and the instance the verdict is about (newest first given)."""
    fresh = [i for i in instances if _age(i, now) <= stale_after]
    if lease is not None:
        ends = f"lease epoch {lease.epoch} ends in {_until(lease, now):.1f} s"
        holder = next((i for i in instances if i.instance_id == lease.holder), None)
        if holder is None:
            return False, f"{lease.holder} holds the lease ({ends}) but has no heartbeat", None
        age = _age(holder, now)
        if age > stale_after:
            return (
                False,
                f"the leader's last heartbeat was {age:.1f} s ago (stale after "
                f"{stale_after:g} s); {ends}",
                holder,
            )
        if holder.state != SchedulerState.RUNNING:
            return False, f"the leader reports {SchedulerState(holder.state).value}; {ends}", holder
        return True, f"running, heartbeat {age:.1f} s ago; {ends}", holder
    if not instances:
        return False, "no scheduler has reported a heartbeat yet", None
    standby = next((i for i in fresh if i.state == SchedulerState.STANDBY), None)
    if standby is not None:
        return False, "no scheduler holds the lease; an instance waits on standby", standby
    latest = instances[0]
    if latest.state == SchedulerState.STOPPED:
        return False, f"stopped {_age(latest, now):.0f} s ago", latest
    if _age(latest, now) <= stale_after:
        return False, "no scheduler holds the lease", latest
    return (
        False,
        f"last heartbeat {_age(latest, now):.1f} s ago (stale after {stale_after:g} s)",
        latest,
    )


def _until(lease: LeaseState, now: datetime) -> float:
    assert lease.expires_at is not None
    return (lease.expires_at - now).total_seconds()


def _scheduler_health(
    instances: Sequence[SchedulerInstance],
    stored_lease: LeaseState | None,
    stale_after: float,
    now: datetime,
) -> SchedulerHealth:
    lease = _current(stored_lease, now)
    healthy, detail, subject = _judge(instances, lease, stale_after, now)
    listed = [
        InstanceInfo(
            instance_id=i.instance_id,
            hostname=i.hostname,
            pid=i.pid,
            state=i.state,
            started_at=i.started_at,
            last_seen=i.last_seen,
            heartbeat_age_seconds=round(_age(i, now), 3),
            fresh=_age(i, now) <= stale_after,
            job_count=i.job_count,
            applied_revision=i.applied_revision,
            leader=lease is not None and i.instance_id == lease.holder,
        )
        for i in instances
    ]
    lease_fields: dict[str, Any] = {}
    if lease is not None:
        lease_fields = {
            "leader": lease.holder,
            "epoch": lease.epoch,
            "lease_expires_at": lease.expires_at,
            "lease_expires_in_seconds": round(_until(lease, now), 3),
        }
    standby = sum(1 for i in listed if i.state == SchedulerState.STANDBY and i.fresh)
    subject_fields: dict[str, Any] = {}
    if subject is not None:
        subject_fields = {
            "instance_id": subject.instance_id,
            "hostname": subject.hostname,
            "pid": subject.pid,
            "state": subject.state,
            "started_at": subject.started_at,
            "last_seen": subject.last_seen,
            "heartbeat_age_seconds": round(_age(subject, now), 3),
            "job_count": subject.job_count,
        }
    return SchedulerHealth(
        healthy=healthy,
        detail=detail,
        standby_instances=standby,
        instances=listed,
        **subject_fields,
        **lease_fields,
    )


def _missing_database_file(engine: Engine) -> str | None:
    path = sqlite_path(engine.url)
    if path is None or path.exists():
        return None
    return (
        f"database file {path.absolute()} does not exist: the scheduler creates it when it "
        "first starts (relative paths are read from the working directory)"
    )


def check_health(
    engine: Engine,
    stale_after_seconds: float,
    *,
    include_jobs: bool = False,
    workers: bool = False,
    timezone: str = "UTC",
    session: Session | None = None,
) -> HealthReport:
    """Check the database and the scheduler heartbeat, and list jobs if asked.

    With `workers` (the runs go to worker processes), the workers are a component too.

    `timezone` is the service's, in which jobs without a zone of their own are described.
    `session`, if given, is read in instead of a session of the check's own; a database
    error then raises, since the caller's transaction cannot go on after one.
    """
    jobs: list[JobInfo] | None = None
    worker_health: WorkersHealth | None = None
    checked_at = utcnow()
    missing = _missing_database_file(engine)
    try:
        if missing:
            raise FileNotFoundError(missing)
        with nullcontext(session) if session else session_scope(engine) as reading:
            problem = schema_problem(reading.connection())
            instances: Sequence[SchedulerInstance] = []
            lease: LeaseState | None = None
            # A database no scheduler has started against yet has no heartbeat table.
            if tables_exist(engine, SchedulerInstance.__tablename__):
                instances = reading.scalars(_LATEST_INSTANCES).all()
            if problem is None:
                lease = read_lease(reading.connection())
            # Read after the rows, so no heartbeat read is newer than the clock it is aged by.
            now = checked_at = database_now(reading.connection())
            if workers:
                worker_health = (
                    read_workers(engine, reading, stale_after_seconds)
                    if problem is None
                    else WorkersHealth(healthy=False, detail=f"unknown: {problem}")
                )
        database = DatabaseHealth(
            healthy=problem is None, detail=f"reachable, but {problem}" if problem else "reachable"
        )
        scheduler = _scheduler_health(instances, lease, stale_after_seconds, now)
        if include_jobs:
            jobs = read_jobs(engine, timezone)
    except (SQLAlchemyError, FileNotFoundError) as error:
        if session is not None:
            raise
        # DBAPI errors keep the driver's message in `orig`, without SQLAlchemy's long suffix.
        reason = first_line(error)
        database = DatabaseHealth(healthy=False, detail=f"unreachable: {reason}")
        unknown = "unknown: the database is unreachable"
        scheduler = SchedulerHealth(healthy=False, detail=unknown)
        if workers:
            worker_health = WorkersHealth(healthy=False, detail=unknown)
    healthy = database.healthy and scheduler.healthy
    if worker_health is not None:
        healthy = healthy and worker_health.healthy
    return HealthReport(
        status="healthy" if healthy else "unhealthy",
        checked_at=checked_at,
        database=database,
        scheduler=scheduler,
        workers=worker_health,
        jobs=jobs,
    )


def check_host_scheduler(
    engine: Engine, stale_after_seconds: float, hostname: str
) -> tuple[bool, str]:
    """Whether the newest scheduler process on `hostname` is alive, by its own heartbeat.

    A container's health check asks this: each replica is judged by itself, so a healthy
    standby is not marked unhealthy because another replica leads.
    """
    alive = {SchedulerState.RUNNING, SchedulerState.STANDBY}
    return _check_host(engine, SchedulerInstance, alive, stale_after_seconds, hostname)


def check_host_worker(
    engine: Engine, stale_after_seconds: float, hostname: str
) -> tuple[bool, str]:
    """Whether the newest worker process on `hostname` serves its queues, by its own heartbeat
    (the worker container's health check)."""
    alive = {WorkerState.RUNNING}
    return _check_host(engine, WorkerProcess, alive, stale_after_seconds, hostname)


def _check_host(
    engine: Engine,
    model: type[SchedulerInstance] | type[WorkerProcess],
    alive: set[SchedulerState] | set[WorkerState],
    stale_after_seconds: float,
    hostname: str,
) -> tuple[bool, str]:
    noun = "scheduler" if model is SchedulerInstance else "worker"
    try:
        with session_scope(engine) as session:
            if not tables_exist(engine, model.__tablename__):
                return False, f"no {noun} has reported a heartbeat yet"
            newest = session.scalars(
                select(model)
                .where(model.hostname == hostname)
                .order_by(model.last_seen.desc())
                .limit(1)
            ).one_or_none()
            # A select of either model is typed as of their base class.
            latest = cast("SchedulerInstance | WorkerProcess | None", newest)
            now = database_now(session.connection())
    except SQLAlchemyError as error:
        reason = first_line(error)
        return False, f"database unreachable: {reason}"
    if latest is None:
        return False, f"no {noun} on {hostname} has reported a heartbeat yet"
    age = _age(latest, now)
    key = latest.instance_id if isinstance(latest, SchedulerInstance) else latest.worker_id
    where = f"{'instance' if noun == 'scheduler' else 'worker'} {key} (pid {latest.pid})"
    if latest.state not in alive:
        return False, f"{where} {latest.state}, heartbeat {age:.0f} s ago"
    if age > stale_after_seconds:
        return (
            False,
            f"{where}: last heartbeat {age:.1f} s ago (stale after {stale_after_seconds:g} s)",
        )
    return True, f"{where} {latest.state}, heartbeat {age:.1f} s ago"
