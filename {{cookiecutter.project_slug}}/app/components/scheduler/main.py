"""The scheduler: `create_scheduler()` builds it with every code-defined job registered."""

from __future__ import annotations

import logging
from datetime import tzinfo
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.util import obj_to_ref, undefined
from sqlalchemy import Engine

from app.components.scheduler.events import JOB_OUTCOME_EVENTS, log_job_outcome
from app.components.scheduler.jobs import JOBS, ScheduledJob
from app.core.db import create_db_engine, utcnow
from app.core.job_store import StoredJob, create_job_store, read_stored_jobs
from app.core.schedules import Once, ScheduleError, describe_trigger
from app.core.settings import Settings, get_settings

logger = logging.getLogger("app.scheduler")


class JobDefinitionError(ValueError):
    """A code-defined job cannot be registered; the message names the job."""


def create_scheduler(
    settings: Settings | None = None, engine: Engine | None = None
) -> AsyncIOScheduler:
    """An unstarted scheduler on the persistent job store, with every job in `JOBS` added.

    Building it only reads the store; `remove_unregistered_jobs` is the runner's next step.
    """
    settings = settings or get_settings()
    engine = engine or create_db_engine(settings.database_url)
    scheduler = AsyncIOScheduler(
        jobstores={"default": create_job_store(engine)},
        job_defaults={
            # One run at a time per job, and runs missed during downtime collapse into one.
            "max_instances": 1,
            "coalesce": True,
            # APScheduler's default of 1 s would drop any run that a restart delays.
            "misfire_grace_time": settings.misfire_grace_time_seconds,
        },
        timezone=settings.zone,
    )
    # APScheduler's executor logs each run, and each failure with a traceback; the listener
    # logs one line per outcome instead, so the executor's lines would only repeat it.
    logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
    scheduler.add_listener(log_job_outcome, JOB_OUTCOME_EVENTS)
    _register_jobs(scheduler, engine, settings.zone)
    return scheduler


def _unchanged(previous: StoredJob, job: ScheduledJob, trigger: Any) -> bool:
    return previous.func_ref == obj_to_ref(job.func) and previous.trigger == describe_trigger(
        trigger
    )


def remove_unregistered_jobs(scheduler: AsyncIOScheduler, engine: Engine) -> list[str]:
    """Delete stored jobs the scheduler did not register: the code is the list of jobs."""
    registered = {job.id for job in scheduler.get_jobs()}
    store = create_job_store(engine)
    removed = sorted({job.id for job in read_stored_jobs(engine)} - registered)
    for job_id in removed:
        store.remove_job(job_id)
        logger.info("job removed from the store: not defined in code", extra={"job_id": job_id})
    return removed


def _register_jobs(scheduler: AsyncIOScheduler, engine: Engine, zone: tzinfo) -> None:
    stored = {job.id: job for job in read_stored_jobs(engine)}
    now = utcnow()
    for job in JOBS:
        try:
            trigger = job.schedule.to_trigger(zone)
        except ScheduleError as error:
            raise JobDefinitionError(f"job {job.id!r}: {error}") from None
        previous = stored.get(job.id)
        # An unchanged job keeps its stored next run time, and so its paused state: adding it
        # fresh would push an interval job's next run back on every restart and forget a run
        # that fell due while the scheduler was down.
        # `undefined` asks APScheduler to compute the first run from the trigger.
        next_run_time: Any = undefined
        if previous is not None and _unchanged(previous, job, trigger):
            next_run_time = previous.next_run_time
        elif isinstance(job.schedule, Once) and job.schedule.at <= now:
            # APScheduler deletes a one-time job once it has run; adding it again would run
            # it again after every restart within the misfire grace time.
            logger.info(
                "one-time job not scheduled: its time has passed",
                extra={"job_id": job.id, "at": job.schedule.at.isoformat()},
            )
            continue
        scheduler.add_job(
            job.func,
            trigger=trigger,
            id=job.id,
            name=job.name,
            next_run_time=next_run_time,
            replace_existing=True,
        )
