"""The scheduler: `create_scheduler()` builds the leader's timer from the code and the table.

The jobs are the code's list (`JOBS` in `jobs.py`, or the list a caller passes) and the rows
of the `jobs` table: schedules changed through the API or the CLI, pauses, next run times and
the jobs added at runtime. APScheduler keeps in its memory store the code's jobs and the
runtime jobs due within the horizon (`horizon.py`); the table is the record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine, select

from app.components.scheduler.alerts import FailureStreaks, alert_hook
from app.components.scheduler.catalog import (
    Definitions,
    JobDefinitionError,
    code_jobs,
    sync_code_jobs,
    validated,
)
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.dispatch import dispatch_for
from app.components.scheduler.execution import JobRuntime, bind, retire_stopped_runtime
from app.components.scheduler.executor import ClaimingExecutor
from app.components.scheduler.history import HistoryRecorder, pending_planned
from app.components.scheduler.horizon import records, versions
from app.components.scheduler.lease import Candidate, Lease, LeaseHeld, new_instance_id
from app.core.db import create_db_engine, session_scope, write_session
from app.core.models import JobRevision
from app.core.settings import Settings, get_settings

__all__ = ["JobDefinitionError", "LeaseHeld", "create_scheduler"]

logger = logging.getLogger("app.scheduler")


def create_scheduler(
    jobs: Sequence[ScheduledJob] | None = None,
    settings: Settings | None = None,
    engine: Engine | None = None,
    *,
    lease: Lease | None = None,
) -> AsyncIOScheduler:
    """An unstarted timer with the jobs due within the horizon, for the holder of `lease`.

    `jobs` defaults to the code's list. Building it first stores the code's jobs in the table
    (new ones added, changed ones reset, removed ones deleted), so only a leader calls it:
    without a `lease` it takes one under a new instance id (`LeaseHeld` if another scheduler
    leads), after retiring this process's previous timer if that is not running. Once
    started, the timer renews the lease, and stops claiming if it cannot.
    """
    settings = settings or get_settings()
    engine = engine or create_db_engine(settings.database_url)
    if lease is None:
        retire_stopped_runtime()
        lease = Candidate(engine, new_instance_id(), settings.leader_lease_seconds).try_take()
        if lease is None:
            raise LeaseHeld("another scheduler leads this database; stop it first")
    code = code_jobs() if jobs is None else tuple(jobs)
    validated(code, settings.timezone)
    with write_session(engine) as session:
        sync_code_jobs(session, code, settings.timezone)
    with session_scope(engine) as session:
        revision = session.scalar(select(JobRevision.revision).where(JobRevision.id == 1)) or 0
    scheduler = AsyncIOScheduler(jobstores={"default": MemoryJobStore()}, timezone=settings.zone)
    runtime = JobRuntime(
        scheduler=scheduler,
        engine=engine,
        recorder=HistoryRecorder(engine, lease.instance_id),
        streaks=FailureStreaks(settings.alert_after_consecutive_failures, alert_hook(settings)),
        settings=settings,
        lease=lease,
        applied_revision=revision,
        definitions=Definitions(code),
        dispatch=dispatch_for(settings),
    )
    scheduler.add_executor(ClaimingExecutor(runtime), "default")
    bind(runtime)
    runtime.horizon.advance()
    with engine.connect() as connection:
        runtime.row_versions.update(versions(connection))
        # The code's jobs, and the runtime jobs due within the horizon: the others are read
        # as they come within it.
        for row in records(connection, runtime.horizon):
            runtime.take(row)
    runtime.planned_at_start = [
        (row.id, row.job_id, row.scheduled_at) for row in pending_planned(engine)
    ]
    return scheduler
