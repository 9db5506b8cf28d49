"""The scheduler: `create_scheduler()` builds it with every code-defined job registered."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.util import obj_to_ref, undefined
from sqlalchemy import Engine

from app.components.scheduler.alerts import FailureStreaks, alert_hook
from app.components.scheduler.catalog import code_jobs, load_catalog
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.execution import JobRuntime, bind, execute
from app.components.scheduler.history import HistoryRecorder
from app.components.scheduler.store import WriteBehindJobStore
from app.components.scheduler.store_ids import base_job_id
from app.core.db import create_db_engine, utcnow
from app.core.job_store import JOBS_TABLE, StoredJob, create_job_store, read_stored_jobs
from app.core.schedules import Once, ScheduleError, describe_trigger
from app.core.settings import Settings, get_settings

logger = logging.getLogger("app.scheduler")

_EXECUTE_REF = obj_to_ref(execute)


class JobDefinitionError(ValueError):
    """A code-defined job cannot be registered; the message names the job and the field."""


def create_scheduler(
    settings: Settings | None = None,
    engine: Engine | None = None,
    instance_id: str | None = None,
) -> AsyncIOScheduler:
    """An unstarted scheduler on the persistent job store, with every job registered.

    The jobs are those in `JOBS`, with schedules changed through the API or the CLI, and the
    jobs added through them. Building it only reads the database; `remove_unregistered_jobs`
    is the runner's next step.
    """
    settings = settings or get_settings()
    engine = engine or create_db_engine(settings.database_url)
    store = WriteBehindJobStore(engine, JOBS_TABLE)
    scheduler = AsyncIOScheduler(jobstores={"default": store}, timezone=settings.zone)
    _validated(code_jobs(), settings)
    catalog = load_catalog(engine, settings.timezone)
    for job_id, reason in catalog.invalid.items():
        logger.error(
            "runtime job not scheduled: its definition is invalid",
            extra={"job_id": job_id, "reason": reason},
        )
    for job_id in catalog.stale_overrides:
        logger.warning(
            "schedule override dropped: the schedule in code changed since it was made",
            extra={"job_id": job_id},
        )
    definitions = _validated(tuple(catalog.jobs.values()), settings)
    runtime = JobRuntime(
        scheduler=scheduler,
        definitions={job.id: job for job, _ in definitions},
        recorder=HistoryRecorder(engine, instance_id or uuid.uuid4().hex[:12]),
        streaks=FailureStreaks(settings.alert_after_consecutive_failures, alert_hook(settings)),
        settings=settings,
        store=store,
    )
    runtime.listen()
    bind(runtime)
    stored = {job.id: job for job in read_stored_jobs(engine)}
    for job, trigger in definitions:
        register_job(scheduler, job, trigger, settings, stored.get(job.id))
    return scheduler


def _validated(
    jobs: tuple[ScheduledJob, ...], settings: Settings
) -> list[tuple[ScheduledJob, BaseTrigger]]:
    seen: set[str] = set()
    result = []
    for job in jobs:
        try:
            if job.id in seen:
                raise ScheduleError(f"id: {job.id!r} is used twice")
            job.validate()
            trigger = job.trigger(settings.timezone)
        except ScheduleError as error:
            raise JobDefinitionError(f"job {job.id!r}: {error}") from None
        seen.add(job.id)
        result.append((job, trigger))
    return result


def remove_unregistered_jobs(scheduler: AsyncIOScheduler, engine: Engine) -> list[str]:
    """Delete stored jobs the scheduler did not register: the code is the list of jobs.

    Planned runs (retries, manual runs) of registered jobs stay.
    """
    registered = {job.id for job in scheduler.get_jobs()}
    store = create_job_store(engine)
    removed = sorted(
        job.id for job in read_stored_jobs(engine) if base_job_id(job.id) not in registered
    )
    for job_id in removed:
        store.remove_job(job_id)
        logger.info("job removed from the store: no longer defined", extra={"job_id": job_id})
    return removed


def _unchanged(previous: StoredJob, trigger: BaseTrigger) -> bool:
    return previous.func_ref == _EXECUTE_REF and previous.trigger == describe_trigger(trigger)


def register_job(
    scheduler: AsyncIOScheduler,
    job: ScheduledJob,
    trigger: BaseTrigger,
    settings: Settings,
    previous: StoredJob | None = None,
) -> bool:
    """Add `job` to the scheduler; False when it is a one-time job whose time has passed."""
    # An unchanged job keeps its stored next run time, and so its paused state: adding it
    # fresh would push an interval job's next run back on every restart and forget a run
    # that fell due while the scheduler was down. `undefined` asks APScheduler to compute
    # the first run from the trigger.
    next_run_time: Any = undefined
    if previous is not None and _unchanged(previous, trigger):
        next_run_time = previous.next_run_time
    elif isinstance(job.schedule, Once) and job.schedule.at <= utcnow():
        # APScheduler deletes a one-time job once it has run; adding it again would run
        # it again after every restart within the misfire grace time.
        logger.info(
            "one-time job not scheduled: its time has passed",
            extra={"job_id": job.id, "at": job.schedule.at.isoformat()},
        )
        return False
    grace = job.misfire_grace_time or settings.misfire_grace_time
    scheduler.add_job(
        execute,
        trigger=trigger,
        id=job.id,
        name=job.name,
        kwargs={"job_id": job.id},
        max_instances=job.max_instances,
        coalesce=job.coalesce,
        misfire_grace_time=int(grace.total_seconds()),
        next_run_time=next_run_time,
        replace_existing=True,
    )
    return True
