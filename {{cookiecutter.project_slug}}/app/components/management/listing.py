"""Jobs filtered, counted and paged in the database, and their runs' figures for one page.

A listing of 10,000 jobs reads the rows of the page it shows, not the whole table: the state a
job is in, its queue and a search of ids and names are all conditions on the `jobs` row.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Row,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.components.management.schemas import LastRun
from app.components.scheduler.catalog import Definitions
from app.components.scheduler.definition import ScheduledJob
from app.core.enums import RATE_STATUSES, UNFINISHED, ExecutionStatus, JobOrigin, JobState, Queue
from app.core.models import JOB_LISTING_ORDER, Job, JobExecution, JobRevision
from app.core.schedules import ScheduleError

# A job's success rate is over this many of its latest runs that ended.
RATE_WINDOW = 100


class JobQuery:
    """The SQL conditions that say which state a stored job is in, against the code's jobs.

    Which runtime jobs are invalid (their function gone, their arguments or schedule no longer
    loading, their id taken by a code job) is worked out in Python, by the same rules the
    catalog follows, once per job revision: runtime rows change only with a change that raises
    it, and the code only with a restart.
    """

    def __init__(
        self, session: Session, code: Sequence[ScheduledJob], revision: int | None = None
    ) -> None:
        """`revision` is the job revision when the caller has read it already."""
        self.code = code
        self.code_ids = [job.id for job in code]
        if revision is None:
            revision = session.scalar(select(JobRevision.revision).where(JobRevision.id == 1)) or 0
        self.invalid_ids = _invalid_runtime_jobs(session, code, revision)

    def listed(self) -> ColumnElement[bool]:
        """Rows that stand for a job: runtime ones, and code ones still in the code."""
        return or_(Job.origin == JobOrigin.RUNTIME, Job.id.in_(self.code_ids))

    def invalid(self) -> ColumnElement[bool]:
        return Job.id.in_(self.invalid_ids)

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
                    # Ids are lowercase by rule: lowering each of 10,000 costs a third of the
                    # search's time for nothing.
                    Job.id.contains(needle, autoescape=True),
                    func.lower(Job.name).contains(needle, autoescape=True),
                )
            )
        return conditions

    def page(
        self, session: Session, conditions: Sequence[ColumnElement[bool]], limit: int, offset: int
    ) -> list[Job]:
        """One page of the stored jobs that meet `conditions`, in the listing's order.

        The order is the one `ix_jobs_listing` holds, so the page is read from the index.
        """
        statement = (
            select(Job).where(*conditions).order_by(*JOB_LISTING_ORDER).limit(limit).offset(offset)
        )
        return list(session.scalars(statement))

    def page_and_total(
        self,
        session: Session,
        conditions: Sequence[ColumnElement[bool]],
        limit: int,
        offset: int,
        *,
        searching: bool,
    ) -> tuple[list[Job], int]:
        """`page`, and how many stored jobs meet `conditions`.

        A search of names reads every row whatever the index, so its page carries the total
        (a window count) and the table is read once, not once for each. Otherwise the total
        is a count of the index and the page one range of it, which a window would turn into
        a read of every row.
        """
        if not searching:
            return self.page(session, conditions, limit, offset), _total(session, conditions)
        statement = (
            select(Job, func.count().over())
            .where(*conditions)
            .order_by(*JOB_LISTING_ORDER)
            .limit(limit)
            .offset(offset)
        )
        found = session.execute(statement).all()
        if found:
            return [row[0] for row in found], found[0][1]
        if offset == 0 and limit > 0:
            return [], 0
        # Past the last page (or an empty one): the window saw no row to count on.
        return [], _total(session, conditions)

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
        """Jobs by state, in one pass over the table, each state counted by a filter."""
        by_state = {state: self.in_state(state) for state in JobState}
        found = session.execute(
            select(*(func.count().filter(condition) for condition in by_state.values())).where(
                self.listed()
            )
        ).one()
        counts = {state: int(count) for state, count in zip(by_state, found, strict=True)}
        counts[JobState.UNSCHEDULED] += len(self.unstored(session, None, None, None))
        return counts


# Per list of code jobs: that list, the job revision it was worked out at, the invalid ids.
_invalid_cache: dict[int, tuple[Sequence[ScheduledJob], int, list[str]]] = {}


def _invalid_runtime_jobs(
    session: Session, code: Sequence[ScheduledJob], revision: int
) -> list[str]:
    cached = _invalid_cache.get(id(code))
    if cached is not None and cached[0] is code and cached[1] == revision:
        return cached[2]
    columns = (
        Job.id,
        Job.origin,
        Job.name,
        Job.function,
        Job.args,
        Job.queue,
        Job.priority,
        Job.schedule,
    )
    definitions = Definitions(code)
    invalid = []
    for row in session.execute(select(*columns).where(Job.origin == JobOrigin.RUNTIME)):
        try:
            definitions.of(row)
        except ScheduleError:
            invalid.append(row.id)
    _invalid_cache[id(code)] = (code, revision, invalid)
    return invalid


@dataclass(frozen=True)
class RunFigures:
    """A job's latest ended run and its success rate over its latest runs."""

    last_run: LastRun | None = None
    success_rate: float | None = None
    runs_counted: int = 0
    running: int = 0


def run_figures(session: Session, job_ids: Collection[str]) -> dict[str, RunFigures]:
    """Each job's figures, in three statements whatever the number of jobs.

    Each job's latest runs are read through its own range of the job's index (which holds the
    status), so a job with 100,000 runs costs no more than one with a hundred.
    """
    if not job_ids:
        return {}
    ids = sorted(job_ids)
    last: dict[str, LastRun] = {}
    for row in _latest(session, ids, _Latest.ENDED, 1):
        last[row.job_id] = LastRun(
            execution_id=row.id,
            status=row.status,
            scheduled_at=row.scheduled_at,
            finished_at=row.finished_at,
            error_message=row.error_message,
        )
    # Counted in the database: 100 runs of each of 50 jobs need not cross to Python.
    rates = {
        row.job_id: (int(row.counted), int(row.succeeded))
        for row in _latest(session, ids, _Latest.COUNTED, RATE_WINDOW)
    }
    running_rows = session.execute(
        select(JobExecution.job_id, func.count())
        .where(JobExecution.job_id.in_(ids), JobExecution.status == ExecutionStatus.RUNNING)
        .group_by(JobExecution.job_id)
    ).all()
    running = {job_id: int(count) for job_id, count in running_rows}
    figures = {}
    for job_id in ids:
        counted, succeeded = rates.get(job_id, (0, 0))
        figures[job_id] = RunFigures(
            last_run=last.get(job_id),
            success_rate=round(succeeded / counted, 4) if counted else None,
            runs_counted=counted,
            running=running.get(job_id, 0),
        )
    return figures


class _Latest(StrEnum):
    """Which of a job's latest runs `_latest_per_job` reads."""

    ENDED = "ended"  # the latest that ended, whatever its status
    COUNTED = "counted"  # those the success rate counts


def _latest(session: Session, ids: list[str], which: _Latest, per_job: int) -> Sequence[Row[Any]]:
    """Each job's latest `per_job` runs of the kind `which` names."""
    params: dict[str, Any]
    if session.get_bind().dialect.name == "postgresql":
        statement, params = _latest_statement(None, which, per_job), {"ids": ids}
    else:
        statement = _latest_statement(len(ids), which, per_job)
        params = {f"job_{number}": job_id for number, job_id in enumerate(ids)}
    return session.execute(statement, params).all()


@lru_cache(maxsize=64)
def _latest_statement(
    jobs: int | None, which: _Latest, per_job: int
) -> Select[Any] | CompoundSelect[Any]:
    """The statement `_latest` runs: a LATERAL read on PostgreSQL (`jobs` None), a UNION of
    `jobs` parts on SQLite; for the rate, grouped by job. Built once per shape: building
    the grouping around a union of 50 parts costs more than running it."""
    statement = (
        _latest_lateral(which, per_job) if jobs is None else _latest_union(jobs, which, per_job)
    )
    if which is _Latest.ENDED:
        return statement
    latest = statement.subquery()
    succeeded = case((latest.c.status == ExecutionStatus.SUCCEEDED.value, 1), else_=0)
    return select(
        latest.c.job_id,
        func.count().label("counted"),
        func.sum(succeeded).label("succeeded"),
    ).group_by(latest.c.job_id)


def _columns(which: _Latest) -> tuple[InstrumentedAttribute[Any], ...]:
    # The rate needs the statuses only; the latest run is shown in full.
    columns: tuple[InstrumentedAttribute[Any], ...] = (JobExecution.job_id, JobExecution.status)
    if which is _Latest.ENDED:
        columns += (
            JobExecution.id,
            JobExecution.scheduled_at,
            JobExecution.finished_at,
            JobExecution.error_message,
        )
    return columns


def _condition(which: _Latest) -> ColumnElement[bool]:
    if which is _Latest.ENDED:
        return JobExecution.status.not_in(UNFINISHED)
    return JobExecution.status.in_(RATE_STATUSES)


def _latest_lateral(which: _Latest, per_job: int) -> Select[Any]:
    """PostgreSQL: one small plan, a LATERAL read of each job's index range.

    A UNION of 50 parts would be planned part by part, which takes longer than running it.
    """
    wanted = (
        func.unnest(bindparam("ids", type_=postgresql.ARRAY(String)))
        .table_valued("job_id")
        .render_derived(name="wanted")
    )
    latest = (
        select(*_columns(which))
        .where(JobExecution.job_id == wanted.c.job_id, _condition(which))
        .order_by(JobExecution.scheduled_at.desc(), JobExecution.id.desc())
        .limit(per_job)
        .lateral("latest")
    )
    return select(*latest.c).select_from(wanted).join(latest, true())


def _latest_union(jobs: int, which: _Latest, per_job: int) -> CompoundSelect[Any]:
    """SQLite: one UNION ALL of index range reads, bound to the ids (`job_0`, `job_1`, ...).

    (SQLite allows 500 parts to a compound statement; a page holds 200 jobs at most.)
    """
    return latest_runs_of_each(
        _columns(which),
        [
            and_(JobExecution.job_id == bindparam(f"job_{number}"), _condition(which))
            for number in range(jobs)
        ],
        per_job,
    )


def latest_runs_of_each(
    columns: Iterable[ColumnElement[Any] | InstrumentedAttribute[Any]],
    parts: Iterable[ColumnElement[bool]],
    limit: int,
) -> CompoundSelect[Any]:
    """The latest `limit` runs meeting each of `parts`, newest first within each: one UNION
    ALL of index ranges, where one range over them all would read every run between."""
    chosen = list(columns)
    return union_all(
        *(
            select(
                *select(*chosen)
                .where(part)
                .order_by(JobExecution.scheduled_at.desc(), JobExecution.id.desc())
                .limit(limit)
                .subquery()
                .c
            )
            for part in parts
        )
    )


def _total(session: Session, conditions: Sequence[ColumnElement[bool]]) -> int:
    return session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
