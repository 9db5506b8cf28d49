"""The persistent job store, and a read-only view of it for processes other than the scheduler.

The view reads APScheduler's table itself instead of going through the store class: the store
deletes any job whose function it cannot import, and a reader must never change what it reads.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from datetime import datetime

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from pydantic import BaseModel
from sqlalchemy import Engine, select

from app.core.db import tables_exist
from app.core.schedules import describe_trigger

logger = logging.getLogger(__name__)

JOBS_TABLE = "apscheduler_jobs"


def create_job_store(engine: Engine) -> SQLAlchemyJobStore:
    """APScheduler's SQLAlchemy job store on the shared database."""
    return SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)


@dataclass(frozen=True)
class StoredJob:
    """A job as stored; `func_ref` is None when its state cannot be read."""

    id: str
    name: str
    func_ref: str | None
    trigger: str
    next_run_time: datetime | None


class JobInfo(BaseModel):
    """A job as the API and the CLI show it."""

    id: str
    name: str
    trigger: str
    next_run_time: datetime | None
    paused: bool


def read_stored_jobs(engine: Engine, job_id: str | None = None) -> list[StoredJob]:
    """Every stored job (or only `job_id`), soonest first, paused last.

    Empty before the first scheduler start.
    """
    if not tables_exist(engine, JOBS_TABLE):
        return []
    table = create_job_store(engine).jobs_t
    query = select(table.c.id, table.c.job_state).order_by(
        table.c.next_run_time.is_(None), table.c.next_run_time, table.c.id
    )
    if job_id is not None:
        query = query.where(table.c.id == job_id)
    jobs = []
    with engine.connect() as connection:
        for job_id, job_state in connection.execute(query):
            try:
                state = pickle.loads(job_state)
                jobs.append(
                    StoredJob(
                        id=job_id,
                        name=state.get("name") or job_id,
                        func_ref=state["func"],
                        trigger=describe_trigger(state["trigger"]),
                        next_run_time=state.get("next_run_time"),
                    )
                )
            except Exception as error:  # noqa: BLE001 - one bad row must not hide the others
                logger.warning(
                    "job state unreadable", extra={"job_id": job_id, "error": repr(error)}
                )
                jobs.append(StoredJob(job_id, job_id, None, f"unreadable: {error!r}", None))
    return jobs


def read_jobs(engine: Engine) -> list[JobInfo]:
    """Every stored job in the form the API and the CLI show."""
    return [
        JobInfo(
            id=job.id,
            name=job.name,
            trigger=job.trigger,
            next_run_time=job.next_run_time,
            paused=job.next_run_time is None,
        )
        for job in read_stored_jobs(engine)
    ]
