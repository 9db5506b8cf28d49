"""Every job there is: the code's list and the `jobs` table, read as definitions.

The leader builds its timer from this, and the API and the CLI describe jobs from it, so all
three agree on what a job is without asking the scheduler process. Which schedule applies to
a code-defined job is decided here, by comparing structured schedules: a schedule changed
through the API lasts while the code's own stays what it was when the row was set from it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from pydantic import ValidationError
from sqlalchemy import Connection, delete, select, text, update
from sqlalchemy.orm import Session

from app.components.scheduler import jobs as job_list
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.fires import first_fire
from app.components.scheduler.functions import ArgumentError, JobFunction
from app.core.db import utcnow
from app.core.enums import JobOrigin, Queue
from app.core.models import Job, JobRevision
from app.core.schedule_specs import Spec, dump_spec, parse_spec, spec_data
from app.core.schedules import Once, ScheduleError

logger = logging.getLogger("app.scheduler")

# PostgreSQL wakes the leader with this at the commit of a change to `jobs` or of a command.
NOTIFY_CHANNEL = "scheduler_changes"


class JobDefinitionError(ValueError):
    """A code-defined job cannot be registered; the message names the job and the field."""


class JobRecord(Protocol):
    """A row of `jobs` as definitions are made from it: an ORM object, or plain columns."""

    @property
    def id(self) -> str: ...
    @property
    def origin(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def function(self) -> str: ...
    @property
    def args(self) -> str: ...
    @property
    def queue(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def schedule(self) -> str: ...
    @property
    def code_schedule(self) -> str | None: ...
    @property
    def paused(self) -> bool: ...
    @property
    def next_run_at(self) -> datetime | None: ...
    @property
    def version(self) -> int: ...


def code_jobs() -> tuple[ScheduledJob, ...]:
    """The jobs defined in `app/components/scheduler/jobs.py`."""
    return job_list.JOBS


def registered_functions(code: Sequence[ScheduledJob]) -> dict[str, JobFunction]:
    """The functions a runtime job may call, by name: those of the code-defined jobs."""
    functions: dict[str, JobFunction] = {}
    for job in code:
        functions.setdefault(job.function.name, job.function)
    return functions


def with_schedule(job: ScheduledJob, spec: Spec) -> ScheduledJob:
    """`job` on another schedule; a spec without a zone keeps the job's own."""
    return replace(job, schedule=spec.to_schedule(), timezone=spec.timezone or job.timezone)


def same_schedule(stored: str | None, spec: Spec) -> bool:
    """Whether a stored schedule is `spec`, compared as data, never as rendered text."""
    if stored is None:
        return False
    try:
        return spec_data(parse_spec(stored)) == spec_data(spec)
    except ValidationError:
        return False


def runtime_definition(row: JobRecord, functions: dict[str, JobFunction]) -> ScheduledJob:
    """A runtime job's definition from its row; ScheduleError names what is wrong."""
    registered = functions.get(row.function)
    if registered is None:
        raise ScheduleError(f"function: {row.function!r} is not a registered job function")
    try:
        parsed = registered.parse(json.loads(row.args or "{}"))
    except ArgumentError as error:
        raise ScheduleError(f"args: {error}") from None
    try:
        spec = parse_spec(row.schedule)
    except ValidationError as error:
        raise ScheduleError(f"schedule: {error.errors()[0]['msg']}") from None
    job = ScheduledJob(
        id=row.id,
        name=row.name,
        func=registered.func,
        schedule=spec.to_schedule(),
        timezone=spec.timezone,
        queue=Queue(row.queue),
        priority=row.priority,
        inputs=registered.inputs,
        args=parsed,
        origin=JobOrigin.RUNTIME,
    )
    # Thousands of runtime jobs share a few functions: share their descriptions too.
    vars(job)["function"] = registered
    return job


@dataclass
class Catalog:
    """Valid definitions by id, their rows, and what could not be loaded, with the reason."""

    jobs: dict[str, ScheduledJob] = field(default_factory=dict)
    rows: dict[str, Job] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)

    def overridden(self, job_id: str) -> bool:
        """Whether a code-defined job runs on a schedule changed through the API."""
        row = self.rows.get(job_id)
        return (
            row is not None
            and row.origin == JobOrigin.CODE
            and row.code_schedule is not None
            and row.schedule != row.code_schedule
        )


class Definitions:
    """Turns rows into definitions against one list of code-defined jobs."""

    def __init__(self, code: Sequence[ScheduledJob]) -> None:
        self.code = {job.id: job for job in code}
        self.functions = registered_functions(code)

    def of(self, row: JobRecord) -> ScheduledJob:
        """The definition a row stands for; ScheduleError says why it has none."""
        if row.origin == JobOrigin.CODE:
            job = self.code.get(row.id)
            if job is None:
                raise ScheduleError("id: no longer defined in code")
            if same_schedule(row.code_schedule, job.spec):
                return with_schedule(job, parse_spec(row.schedule))
            # Set from an older schedule in code: the next leader resets it from the code.
            return job
        if row.id in self.code:
            raise ScheduleError("id: a code-defined job has this id now")
        return runtime_definition(row, self.functions)


def load_catalog(
    session: Session, code: Sequence[ScheduledJob], only: Collection[str] | None = None
) -> Catalog:
    """The code's jobs on the schedules their rows keep, and the runtime jobs.

    `only` limits it to those ids: one job's change need not read 10,000 rows.
    """
    query = select(Job).order_by(Job.id)
    if only is not None:
        query = query.where(Job.id.in_(only))
    catalog = catalog_of(session.scalars(query), code)
    if only is not None:
        catalog.jobs = {job_id: job for job_id, job in catalog.jobs.items() if job_id in only}
    return catalog


def catalog_of(rows: Iterable[Job], code: Sequence[ScheduledJob]) -> Catalog:
    """The catalog of these rows, with every code job (a row or not) that is still valid."""
    catalog = Catalog(rows={row.id: row for row in rows})
    definitions = Definitions(code)
    # Code jobs without a row yet are listed too: the next leader stores them.
    catalog.jobs = {job.id: job for job in code}
    for row in catalog.rows.values():
        try:
            catalog.jobs[row.id] = definitions.of(row)
        except ScheduleError as error:
            if row.origin == JobOrigin.RUNTIME:
                catalog.invalid[row.id] = str(error)
    return catalog


def next_revision(session: Session) -> int:
    """Raise the change counter in the change's own transaction; returns the new revision.

    On PostgreSQL the leader is notified at commit, so it never wakes before the change is
    visible.
    """
    # The migration writes the counter's one row.
    revision = session.execute(
        update(JobRevision)
        .where(JobRevision.id == 1)
        .values(revision=JobRevision.revision + 1)
        .returning(JobRevision.revision)
    ).scalar_one()
    notify(session.connection())
    return int(revision)


def notify(connection: Connection) -> None:
    """Wake the leader at commit (PostgreSQL; SQLite leaders poll)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})


def first_run(job: ScheduledJob, default_zone: str, now: datetime) -> datetime | None:
    """When a job whose schedule starts now first runs; None for a one-time job in the past."""
    if isinstance(job.schedule, Once) and job.schedule.at <= now:
        return None
    return first_fire(job.trigger(default_zone), now)


def new_row(job: ScheduledJob, default_zone: str, now: datetime, *, paused: bool = False) -> Job:
    """The row of a job that is not stored yet."""
    spec = dump_spec(job.spec)
    return Job(
        id=job.id,
        origin=job.origin,
        name=job.name,
        function=job.function.name,
        args=json.dumps(job.function.to_json(job.args)) if job.args else "{}",
        queue=job.queue.value,
        priority=job.priority,
        max_instances=job.max_instances,
        schedule=spec,
        code_schedule=spec if job.origin is JobOrigin.CODE else None,
        paused=paused,
        next_run_at=first_run(job, default_zone, now),
        version=1,
        updated_at=now,
    )


def sync_code_jobs(session: Session, code: Sequence[ScheduledJob], default_zone: str) -> bool:
    """Make the table hold every code-defined job, as the code defines it; True if it changed.

    Run by each new leader before it builds its timer: new jobs are added, jobs whose schedule
    in code changed take the new one (a schedule changed through the API is dropped then),
    jobs removed from the code are deleted. Pauses and next run times of the others stay.
    """
    now = utcnow()
    # The code's rows and any row with a code job's id; not the runtime jobs, which may be
    # thousands and are none of this function's business.
    ids = [job.id for job in code]
    wanted = (Job.origin == JobOrigin.CODE) | Job.id.in_(ids)
    rows = {row.id: row for row in session.scalars(select(Job).where(wanted))}
    changed = False
    for job in code:
        row = rows.get(job.id)
        if row is None:
            session.add(new_row(job, default_zone, now))
            if isinstance(job.schedule, Once) and job.schedule.at <= now:
                logger.info(
                    "one-time job not scheduled: its time has passed",
                    extra={"job_id": job.id, "at": job.schedule.at},
                )
            changed = True
            continue
        if row.origin != JobOrigin.CODE:
            raise JobDefinitionError(
                f"job {job.id!r} is defined in code and was also added at runtime: delete the "
                "runtime job, or give the code's job another id"
            )
        updates: dict[str, object] = {}
        if not same_schedule(row.code_schedule, job.spec):
            if row.code_schedule is not None and row.schedule != row.code_schedule:
                logger.warning(
                    "schedule override dropped: the schedule in code changed since it was made",
                    extra={"job_id": job.id},
                )
            spec = dump_spec(job.spec)
            # A pause belonged to the old schedule: the new one starts fresh.
            updates |= {
                "schedule": spec,
                "code_schedule": spec,
                "paused": False,
                "next_run_at": first_run(job, default_zone, now),
            }
        described = {
            "name": job.name,
            "function": job.function.name,
            "queue": job.queue.value,
            "priority": job.priority,
            "max_instances": job.max_instances,
        }
        updates |= {key: value for key, value in described.items() if getattr(row, key) != value}
        if updates:
            for key, value in updates.items():
                setattr(row, key, value)
            row.version += 1
            row.updated_at = now
            changed = True
    defined = {job.id for job in code}
    removed = sorted(
        row.id for row in rows.values() if row.origin == JobOrigin.CODE and row.id not in defined
    )
    if removed:
        session.execute(delete(Job).where(Job.id.in_(removed)))
        for job_id in removed:
            logger.info("job removed: no longer defined in code", extra={"job_id": job_id})
        changed = True
    if changed:
        session.flush()
        next_revision(session)
    return changed


def validated(jobs: Sequence[ScheduledJob], default_zone: str) -> None:
    """Raise JobDefinitionError for the first job that cannot be registered."""
    seen: set[str] = set()
    for job in jobs:
        try:
            if job.id in seen:
                raise ScheduleError(f"id: {job.id!r} is used twice")
            job.validate()
            job.trigger(default_zone)
        except ScheduleError as error:
            raise JobDefinitionError(f"job {job.id!r}: {error}") from None
        seen.add(job.id)
