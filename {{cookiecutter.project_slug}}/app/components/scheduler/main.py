"""The scheduler: `create_scheduler()` builds it with every code-defined job registered."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.util import obj_to_ref, undefined
from sqlalchemy import Engine

from app.components.scheduler.events import JOB_OUTCOME_EVENTS, log_job_outcome
from app.components.scheduler.jobs import JOBS
from app.core.db import create_db_engine, init_db
from app.core.job_store import create_job_store, read_stored_jobs
from app.core.schedules import ScheduleError, describe_trigger
from app.core.settings import Settings, get_settings


class JobDefinitionError(ValueError):
    """A code-defined job cannot be registered; the message names the job."""


def create_scheduler(
    settings: Settings | None = None, engine: Engine | None = None
) -> AsyncIOScheduler:
    """An unstarted scheduler on the persistent job store, with every job in `JOBS` added.

    A job whose function and schedule are unchanged since the last start keeps its stored next
    run time (and so its paused state); re-adding it fresh would push an interval job's next
    run back on every restart and forget runs missed while the scheduler was down.
    """
    settings = settings or get_settings()
    engine = engine or create_db_engine(settings.database_url)
    init_db(engine)
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

    stored = {job.id: job for job in read_stored_jobs(engine) if job.readable}
    for job in JOBS:
        try:
            trigger = job.schedule.to_trigger(settings.zone)
        except ScheduleError as error:
            raise JobDefinitionError(f"job {job.id!r}: {error}") from None
        next_run_time: datetime | Any | None = undefined
        previous = stored.get(job.id)
        if (
            previous is not None
            and previous.func_ref == obj_to_ref(job.func)
            and previous.trigger == describe_trigger(trigger)
        ):
            next_run_time = previous.next_run_time
        scheduler.add_job(
            job.func,
            trigger=trigger,
            id=job.id,
            name=job.name,
            next_run_time=next_run_time,
            replace_existing=True,
        )
    return scheduler
