"""Every job there is: the code's list, plus what the API and the CLI added or changed.

The scheduler builds its jobs from this at start, and the API and the CLI describe jobs from
it, so all three agree on what a job is without asking the scheduler process.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace

from sqlalchemy import Engine, select

from app.components.scheduler import jobs as job_list
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.functions import ArgumentError, JobFunction
from app.core.db import session_scope, tables_exist
from app.core.enums import Queue
from app.core.models import RuntimeJob, ScheduleOverride
from app.core.schedule_specs import CronSpec, IntervalSpec, OnceSpec, parse_spec
from app.core.schedules import ScheduleError, describe_trigger

logger = logging.getLogger("app.scheduler")

Spec = CronSpec | IntervalSpec | OnceSpec


def code_jobs() -> tuple[ScheduledJob, ...]:
    """The jobs defined in `app/components/scheduler/jobs.py`."""
    return job_list.JOBS


def registered_functions() -> dict[str, JobFunction]:
    """The functions a runtime job may call, by name: those of the code-defined jobs."""
    functions: dict[str, JobFunction] = {}
    for job in code_jobs():
        functions.setdefault(job.function.name, job.function)
    return functions


def runtime_definition(
    job_id: str, name: str, function: str, args: str, schedule: str, queue: str
) -> ScheduledJob:
    """A runtime job's definition from its stored form; ScheduleError names what is wrong."""
    registered = registered_functions().get(function)
    if registered is None:
        raise ScheduleError(f"function: {function!r} is not a registered job function")
    try:
        parsed = registered.parse(json.loads(args))
    except ArgumentError as error:
        raise ScheduleError(f"args: {error}") from None
    spec = parse_spec(schedule)
    return ScheduledJob(
        id=job_id,
        name=name,
        func=registered.func,
        schedule=spec.to_schedule(),
        timezone=spec.timezone,
        queue=Queue(queue),
        inputs=registered.inputs,
        args=parsed,
        origin="runtime",
    )


def with_schedule(job: ScheduledJob, spec: Spec) -> ScheduledJob:
    """`job` on another schedule; a spec without a zone keeps the job's own."""
    return replace(job, schedule=spec.to_schedule(), timezone=spec.timezone or job.timezone)


@dataclass
class Catalog:
    """Valid definitions by id, and what could not be loaded, with the reason."""

    jobs: dict[str, ScheduledJob] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    # Overrides made for a schedule the code has changed since: the code wins.
    stale_overrides: list[str] = field(default_factory=list)


def load_catalog(engine: Engine, default_zone: str) -> Catalog:
    """The code's jobs with their schedule overrides, and the runtime jobs."""
    catalog = Catalog(jobs={job.id: job for job in code_jobs()})
    if not tables_exist(engine, RuntimeJob.__tablename__, ScheduleOverride.__tablename__):
        return catalog
    with session_scope(engine) as session:
        overrides = session.scalars(select(ScheduleOverride)).all()
        runtime_rows = session.scalars(select(RuntimeJob).order_by(RuntimeJob.id)).all()
    for override in overrides:
        job = catalog.jobs.get(override.job_id)
        if job is None or _code_trigger(job, default_zone) != override.code_trigger:
            catalog.stale_overrides.append(override.job_id)
            continue
        catalog.jobs[job.id] = with_schedule(job, parse_spec(override.schedule))
    for row in runtime_rows:
        if row.id in catalog.jobs:
            catalog.invalid[row.id] = "id: a code-defined job has this id now"
            continue
        try:
            catalog.jobs[row.id] = runtime_definition(
                row.id, row.name, row.function, row.args, row.schedule, row.queue
            )
        except (ScheduleError, ValueError) as error:
            catalog.invalid[row.id] = str(error)
    return catalog


def _code_trigger(job: ScheduledJob, default_zone: str) -> str | None:
    try:
        return describe_trigger(job.trigger(default_zone))
    except ScheduleError:
        return None


def code_trigger(job_id: str, default_zone: str) -> str | None:
    """The trigger the code gives `job_id`, as the store describes it; None for other jobs."""
    job = next((job for job in code_jobs() if job.id == job_id), None)
    return _code_trigger(job, default_zone) if job else None
