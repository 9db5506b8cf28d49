"""Jobs as the `jobs` table holds them, in the form health and reports show; plain columns only."""

from __future__ import annotations

import logging

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine, select

from app.core.db import tables_exist
from app.core.models import Job
from app.core.schedule_specs import Spec, parse_spec
from app.core.schedules import ScheduleError, describe_trigger, parse_timezone
from app.core.times import UtcTime

logger = logging.getLogger(__name__)


class JobInfo(BaseModel):
    """A job as the API and the CLI show it."""

    id: str
    name: str
    trigger: str
    next_run_time: UtcTime | None
    paused: bool


def describe_spec(spec: Spec, default_zone: str) -> str:
    """A schedule's human-readable form, as `describe_trigger` writes it."""
    try:
        zone = parse_timezone(spec.timezone or default_zone)
        return describe_trigger(spec.to_schedule().to_trigger(zone))
    except ScheduleError as error:
        return f"invalid: {error}"


def describe_stored(schedule: str, default_zone: str) -> str:
    """A stored schedule's human-readable form; a row that does not parse says why."""
    try:
        return describe_spec(parse_spec(schedule), default_zone)
    except ValidationError as error:
        return f"invalid: {error.errors()[0]['msg']}"


def read_jobs(engine: Engine, default_zone: str) -> list[JobInfo]:
    """Every stored job, soonest next run first, paused and finished ones last.

    Empty before the first migration.
    """
    if not tables_exist(engine, Job.__tablename__):
        return []
    query = select(Job.id, Job.name, Job.schedule, Job.paused, Job.next_run_at).order_by(
        Job.paused, Job.next_run_at.is_(None), Job.next_run_at, Job.id
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        JobInfo(
            id=job_id,
            name=name,
            trigger=describe_stored(schedule, default_zone),
            next_run_time=None if paused else next_run_at,
            paused=paused,
        )
        for job_id, name, schedule, paused, next_run_at in rows
    ]
