"""Jobs filtered, counted and paged in the database, and their runs' figures for one page.

A listing of 10,000 jobs reads the rows of the page it shows, not the whole table: the state a
job is in, its queue and a search of ids and names are all conditions on the `jobs` row.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    and_,
    case,
    func,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.components.management.schemas import LastRun
from app.components.scheduler.catalog import registered_functions
from app.components.scheduler.definition import ScheduledJob
from app.core.enums import RATE_STATUSES, UNFINISHED, ExecutionStatus, JobOrigin, JobState, Queue
from app.core.models import Job, JobExecution

# A job's success rate is over this many of its latest runs that ended.
RATE_WINDOW = 100


class JobQuery:
    """The SQL conditions that say which state a stored job is in, against the code's jobs.

    A runtime job is invalid when its function is no longer registered or a code job took its
    id; a stored schedule that no longer parses is found when the page's rows are loaded.
    """

    def __init__(self, code: Sequence[ScheduledJob]) -> None:
        self.code = code
        self.code_ids = [job.id for job in code]
        self.functions = sorted(registered_functions(code))

    def listed(self) -> ColumnElement[bool]:
        """Rows that stand for a job: runtime ones, and code ones still in the code."""
        return or_(Job.origin == JobOrigin.RUNTIME, Job.id.in_(self.code_ids))

    def invalid(self) -> ColumnElement[bool]:
        return and_(
            Job.origin == JobOrigin.RUNTIME,
            or_(Job.function.not_in(self.functions), Job.id.in_(self.code_ids)),
        )

    def in_state(self, state: JobState) -> ColumnElement[bool]:
        if state is JobState.INVALID:
            return self.invalid()
        valid = not_(self.invalid())
        if state is JobState.PAUSED:
            return and_(valid, Job.paused)
        waiting = Job.next_run_at.is_not(None)
        if state is JobState.SCHEDULED:
            return and_(valid, not_(Job.paused), waiting)
        return and_(valid, not_(Job.paused), not_(waiting))

    def conditions(
        self, state: JobState | None, queue: Queue | None, search: str | None
    ) -> list[ColumnElement[bool]]:
        conditions = [self.listed()]
        if state is not None:
            conditions.append(self.in_state(state))
        if queue is not None:
            conditions.append(Job.queue == queue)
        if search:
            needle = search.lower()
            conditions.append(
                or_(
                    func.lower(Job.id).contains(needle, autoescape=True),
                    func.lower(Job.name).contains(needle, autoescape=True),
                )
            )
        return conditions

    @staticmethod
    def order() -> tuple[ColumnElement[Any] | InstrumentedAttribute[str], ...]:
        """Soonest next run first; paused and unscheduled jobs after, by id."""
        next_run = case((Job.paused, None), else_=Job.next_run_at)
        return (next_run.is_(None), next_run, Job.id)

    def unstored(
        self, session: Session, state: JobState | None, queue: Queue | None, search: str | None
    ) -> list[ScheduledJob]:
        """Code jobs no scheduler has stored yet (unscheduled until one does), that match."""
        if state not in (None, JobState.UNSCHEDULED):
            return []
        stored = set(session.scalars(select(Job.id).where(Job.id.in_(self.code_ids))))
        needle = (search or "").lower()
        return [
            job
            for job in self.code
            if job.id not in stored
            and (queue is None or job.queue == queue)
            and (needle in job.id.lower() or needle in job.name.lower())
        ]

    def counts(self, session: Session) -> dict[JobState, int]:
        """Jobs by state, in one statement."""
        columns = [
            func.coalesce(func.sum(case((self.in_state(state), 1), else_=0)), 0)
            for state in JobState
        ]
        row = session.execute(select(*columns).where(self.listed())).one()
        counts = {state: int(count) for state, count in zip(JobState, row, strict=True)}
        counts[JobState.UNSCHEDULED] += len(self.unstored(session, None, None, None))
        return counts


@dataclass(frozen=True)
class RunFigures:
    """A job's latest ended run and its success rate over its latest runs."""

    last_run: LastRun | None = None
    success_rate: float | None = None
    runs_counted: int = 0
    running: int = 0


def run_figures(session: Session, job_ids: Collection[str]) -> dict[str, RunFigures]:
    """Each job's figures, in three statements whatever the number of jobs.

    Each job's latest runs are read through its own `(job_id, scheduled_at)` index range, so a
    job with 100,000 runs costs no more than one with a hundred.
    """
    if not job_ids:
        return {}
    ids = sorted(job_ids)
    last: dict[str, LastRun] = {}
    for row in session.execute(_latest_per_job(ids, _ended(), 1)).all():
        last[row.job_id] = LastRun(
            execution_id=row.id,
            status=row.status,
            scheduled_at=row.scheduled_at,
            finished_at=row.finished_at,
            error_message=row.error_message,
        )
    statuses: dict[str, list[str]] = {job_id: [] for job_id in ids}
    for row in session.execute(
        _latest_per_job(ids, JobExecution.status.in_(RATE_STATUSES), RATE_WINDOW)
    ).all():
        statuses[row.job_id].append(row.status)
    running_rows = session.execute(
        select(JobExecution.job_id, func.count())
        .where(JobExecution.job_id.in_(ids), JobExecution.status == ExecutionStatus.RUNNING)
        .group_by(JobExecution.job_id)
    ).all()
    running = {job_id: int(count) for job_id, count in running_rows}
    figures = {}
    for job_id in ids:
        counted = statuses[job_id]
        rate = (
            round(counted.count(ExecutionStatus.SUCCEEDED) / len(counted), 4) if counted else None
        )
        figures[job_id] = RunFigures(
            last_run=last.get(job_id),
            success_rate=rate,
            runs_counted=len(counted),
            running=running.get(job_id, 0),
        )
    return figures


def _ended() -> ColumnElement[bool]:
    return JobExecution.status.not_in(UNFINISHED)


def _latest_per_job(
    ids: list[str], condition: ColumnElement[bool], per_job: int
) -> CompoundSelect[Any]:
    """Each job's latest `per_job` runs that meet `condition`, as one UNION ALL.

    (SQLite allows 500 parts to a compound statement: a page holds 200 jobs at most.)
    """
    columns = (
        JobExecution.id,
        JobExecution.job_id,
        JobExecution.status,
        JobExecution.scheduled_at,
        JobExecution.finished_at,
        JobExecution.error_message,
    )
    parts = [
        select(
            *select(*columns)
            .where(JobExecution.job_id == job_id, condition)
            .order_by(JobExecution.scheduled_at.desc())
            .limit(per_job)
            .subquery()
            .c
        )
        for job_id in ids
    ]
    return union_all(*parts)
