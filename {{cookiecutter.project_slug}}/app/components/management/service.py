"""Managing jobs and runs: the one implementation behind the API and the CLI.

Reads come from the database the scheduler writes. A job change (pause, resume, reschedule,
add, delete) is a row update in `jobs` that raises the job revision, in one transaction; the
answer says whether the running leader has applied that revision. Running now, retrying and
cancelling need the live process and go to it as commands (see
`app/components/scheduler/commands.py`).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    CompoundSelect,
    CursorResult,
    Engine,
    Select,
    and_,
    bindparam,
    delete,
    false,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from app import ENV_PREFIX
from app.components.management.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    NotReady,
)
from app.components.management.listing import (
    JobQuery,
    RunFigures,
    latest_runs_of_each,
    run_figures,
)
from app.components.management.schemas import (
    AddJobRequest,
    AuditEntryInfo,
    AuditPage,
    CommandResult,
    ExecutionDetail,
    ExecutionFeed,
    ExecutionInfo,
    ExecutionPage,
    FunctionInfo,
    JobCounts,
    JobDetail,
    JobPage,
    JobSummary,
    NextFire,
    NotRunEvent,
    QueueCounts,
    SchedulerStatus,
)
from app.components.scheduler.catalog import (
    Catalog,
    catalog_of,
    code_jobs,
    first_run,
    load_catalog,
    new_row,
    next_revision,
    registered_functions,
    with_schedule,
)
from app.components.scheduler.commands import (
    CommandKind,
    new_command_id,
    scheduler_running,
    send_command,
)
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.functions import ArgumentError
from app.components.scheduler.history import add_planned, cancel_pending, new_execution_id
from app.components.scheduler.upcoming import upcoming_fires
from app.core import audit
from app.core.audit import Actor
from app.core.db import session_scope, tables_exist, utcnow, write_session
from app.core.enums import (
    FAILED_ENDS,
    UNFINISHED,
    AuditAction,
    CommandStatus,
    ExecutionStatus,
    JobOrigin,
    JobState,
    Queue,
    SchedulerState,
    TriggerKind,
)
from app.core.health import check_health
from app.core.models import (
    AuditEntry,
    Job,
    JobExecution,
    JobRevision,
    SchedulerCommand,
    SchedulerInstance,
)
from app.core.schedule_specs import IntervalSpec, OnceSpec, Spec, dump_spec
from app.core.schedules import ScheduleError, describe_trigger
from app.core.settings import Settings
from app.core.text import CONTROL_CHARACTERS
from app.core.times import iso_utc

COUNTS_WINDOW = timedelta(hours=24)
# How many coming scheduled times a job's detail lists.
NEXT_FIRES = 10
_POLL_SECONDS = 0.01

# A change to make to a job's row, given the session and the catalog read in its transaction;
# returns the sentence that describes it.
Change = Callable[[Session, Catalog], str]


# Runs that did not run or did not end on their own: a job's "why it did not run".
NOT_RUN = (
    ExecutionStatus.MISSED,
    ExecutionStatus.SKIPPED,
    ExecutionStatus.INTERRUPTED,
    ExecutionStatus.CANCELLED,
)

# Schedules described, by schedule and zones: building a cron trigger to describe it costs more
# than the rest of a listed job, and a page of 50 often holds a handful of distinct schedules.
_descriptions: dict[tuple[str, str | None, str], str] = {}
_DESCRIPTIONS_KEPT = 10_000


class Management:
    """Jobs, runs and the scheduler's status, on the shared database.

    `jobs` is the code's job list, by default the one in `app/components/scheduler/jobs.py`.
    Every change is kept in the audit log under `actor`.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        jobs: Sequence[ScheduledJob] | None = None,
        *,
        actor: Actor | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.code = code_jobs() if jobs is None else tuple(jobs)
        # Who the audit log names for the changes made here: by default the local user.
        self.actor = actor or Actor.local_user()
        self._shared: Session | None = None
        self._shared_query: JobQuery | None = None

    @contextmanager
    def one_read(self) -> Iterator[None]:
        """Answer every read inside from one session: a page that asks for several things
        then takes one connection and one transaction, not one of each per question."""
        if self._shared is not None:
            yield
            return
        with session_scope(self.engine) as session:
            self._shared = session
            try:
                yield
            finally:
                self._shared, self._shared_query = None, None

    def _job_query(self, session: Session, revision: int | None = None) -> JobQuery:
        # Within `one_read`, which stored jobs are invalid is worked out once for the page.
        if session is not self._shared:
            return JobQuery(session, self.code, revision)
        if self._shared_query is None:
            self._shared_query = JobQuery(session, self.code, revision)
        return self._shared_query

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        if self._shared is not None:
            yield self._shared
            return
        with session_scope(self.engine) as session:
            yield session

    # Reads

    def list_jobs(
        self,
        state: JobState | None = None,
        queue: Queue | None = None,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
    ) -> JobPage:
        """Jobs, soonest next run first, filtered by state, queue and a search of ids and
        names; code jobs no scheduler has stored yet come last."""
        with self._reading() as session:
            if not self._has_tables():
                rows: list[Job] = []
                stored_total = 0
                unstored = [
                    job
                    for job in self.code
                    if state in (None, JobState.UNSCHEDULED)
                    and (queue is None or job.queue == queue)
                    and (search or "").lower() in f"{job.id}\n{job.name}".lower()
                ]
            else:
                query = self._job_query(session)
                conditions = query.conditions(state, queue, search)
                rows, stored_total = query.page_and_total(
                    session, conditions, limit, offset, searching=bool(search)
                )
                unstored = query.unstored(session, state, queue, search)
            catalog = catalog_of(rows, self.code)
            # The code jobs without a row follow the stored ones.
            start = max(0, offset - stored_total)
            extra = unstored[start : start + limit - len(rows)]
            ids = [row.id for row in rows] + [job.id for job in extra]
            figures = self._figures(session, ids)
        items = [self._summary(job_id, catalog, figures[job_id]) for job_id in ids]
        return JobPage(items=items, total=stored_total + len(unstored), limit=limit, offset=offset)

    def upcoming(self, limit: int = 10) -> list[JobSummary]:
        """The scheduled jobs that fire next, soonest first; without their runs' figures,
        which a glance at what comes next does not need."""
        if not self._has_tables():
            return []
        with self._reading() as session:
            query = self._job_query(session)
            rows = query.page(session, query.conditions(JobState.SCHEDULED, None, None), limit, 0)
        catalog = catalog_of(rows, self.code)
        return [self._summary(row.id, catalog, RunFigures()) for row in rows]

    def job(self, job_id: str) -> JobDetail:
        """One job in full; NotFound for an unknown id."""
        with self._reading() as session:
            catalog = self._catalog(session, only=[job_id])
            if job_id not in catalog.jobs and job_id not in catalog.invalid:
                raise NotFound(f"no job {job_id!r}")
            return self._detail(session, job_id, catalog)

    def functions(self) -> list[FunctionInfo]:
        """The functions runtime jobs may call."""
        return [
            FunctionInfo(name=name, inputs=function.describe_inputs())
            for name, function in sorted(registered_functions(self.code).items())
        ]

    def executions(
        self,
        job_id: str | None = None,
        status: ExecutionStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ExecutionPage:
        """Runs, newest first; NotFound when `job_id` names no job and has no history."""
        conditions = _run_conditions(job_id, status, since, until)
        if not self._has_tables():
            if job_id is not None and job_id not in {job.id for job in self.code}:
                raise NotFound(f"no job {job_id!r}")
            return ExecutionPage(items=[], total=0, limit=limit, offset=offset)
        with self._reading() as session:
            total = session.scalar(
                select(func.count()).select_from(JobExecution).where(*conditions)
            )
            if job_id is not None and not total:
                catalog = self._catalog(session)
                if job_id not in catalog.jobs and job_id not in catalog.invalid:
                    raise NotFound(f"no job {job_id!r}")
            rows = session.scalars(
                select(JobExecution)
                .where(*conditions)
                .order_by(JobExecution.scheduled_at.desc(), JobExecution.id)
                .limit(limit)
                .offset(offset)
            ).all()
            items = [ExecutionInfo.model_validate(_execution_fields(row)) for row in rows]
        return ExecutionPage(items=items, total=total or 0, limit=limit, offset=offset)

    def execution_feed(
        self,
        job_id: str | None = None,
        status: ExecutionStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> ExecutionFeed:
        """Runs, newest first, a page at a time: `before` is the `next` of the page before.

        Each page is one index range read from its cursor, however deep in the history.
        """
        conditions = _run_conditions(job_id, status, since, until)
        if before is not None:
            at, execution_id = parse_cursor(before)
            # The first condition bounds the index range; the second breaks ties by id.
            conditions.append(JobExecution.scheduled_at <= at)
            conditions.append((JobExecution.scheduled_at < at) | (JobExecution.id < execution_id))
        if not tables_exist(self.engine, JobExecution.__tablename__):
            return ExecutionFeed(items=[], limit=limit, next=None)
        with self._reading() as session:
            rows = session.scalars(
                select(JobExecution)
                .where(*conditions)
                .order_by(JobExecution.scheduled_at.desc(), JobExecution.id.desc())
                .limit(limit + 1)
            ).all()
            items = [ExecutionInfo.model_validate(_execution_fields(row)) for row in rows[:limit]]
        following = cursor_of(items[-1].scheduled_at, items[-1].id) if len(rows) > limit else None
        return ExecutionFeed(items=items, limit=limit, next=following)

    def recent_failures(self, limit: int = 10) -> list[ExecutionInfo]:
        """The latest runs that failed or timed out, newest first."""
        if not tables_exist(self.engine, JobExecution.__tablename__):
            return []
        with self._reading() as session:
            rows = session.scalars(_recent_failures_statement(limit)).all()
            return [ExecutionInfo.model_validate(_execution_fields(row)) for row in rows]

    def why_not_run(self, job_id: str, limit: int = 10) -> list[NotRunEvent]:
        """Runs of a job that did not happen or did not end on their own (up to `limit` of
        each status), and its latest pauses and resumes (up to 2 x `limit` of them): newest
        first, at most 2 x `limit` in all."""
        events: list[NotRunEvent] = []
        if not _storable(job_id) or not tables_exist(
            self.engine, JobExecution.__tablename__, AuditEntry.__tablename__
        ):
            return events
        with self._reading() as session:
            for run in session.execute(_not_run_statement(limit), {"job": job_id}):
                events.append(
                    NotRunEvent(
                        at=run.scheduled_at,
                        what=run.status,
                        reason=run.error_message or "",
                        execution_id=run.id,
                    )
                )
            changes = session.scalars(
                select(AuditEntry)
                .where(
                    AuditEntry.job_id == job_id,
                    AuditEntry.action.in_((AuditAction.PAUSE, AuditAction.RESUME)),
                )
                .order_by(AuditEntry.at.desc(), AuditEntry.id)
                .limit(limit * 2)
            )
            for entry in changes:
                refused = entry.outcome == CommandStatus.REJECTED
                done = "paused" if entry.action == AuditAction.PAUSE else "resumed"
                events.append(
                    NotRunEvent(
                        at=entry.at,
                        what=f"{entry.action} refused" if refused else done,
                        reason=f"by {entry.actor_kind} {entry.actor} ({entry.outcome})",
                    )
                )
        events.sort(key=lambda event: (event.at, event.execution_id or ""), reverse=True)
        return events[: limit * 2]

    def audit(
        self,
        job_id: str | None = None,
        action: AuditAction | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> AuditPage:
        """The audit log, newest first: every change to a job or a run."""
        if not tables_exist(self.engine, AuditEntry.__tablename__):
            return AuditPage(items=[], total=0, limit=limit, offset=offset)
        conditions: list[Any] = []
        if job_id is not None:
            conditions.append(AuditEntry.job_id == job_id if _storable(job_id) else false())
        if action is not None:
            conditions.append(AuditEntry.action == action)
        if since is not None:
            conditions.append(AuditEntry.at >= since)
        with self._reading() as session:
            total = session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions))
            rows = session.scalars(
                select(AuditEntry)
                .where(*conditions)
                .order_by(AuditEntry.at.desc(), AuditEntry.id)
                .limit(limit)
                .offset(offset)
            ).all()
            items = [
                AuditEntryInfo.model_validate(
                    {
                        **{name: getattr(row, name) for name in AuditEntryInfo.model_fields},
                        "before": json.loads(row.before) if row.before else None,
                        "after": json.loads(row.after) if row.after else None,
                    }
                )
                for row in rows
            ]
        return AuditPage(items=items, total=total or 0, limit=limit, offset=offset)

    def execution(self, execution_id: str) -> ExecutionDetail:
        """One run with its traceback; NotFound for an unknown id."""
        with self._reading() as session:
            row = self._execution_row(session, execution_id)
            return ExecutionDetail.model_validate(_execution_fields(row))

    def status(self) -> SchedulerStatus:
        """Instances and heartbeats, job counts, and runs per queue (of those `Queue` names,
        the only ones a run is given) since a day ago, with every unfinished one."""
        with self._reading() as session:
            health = check_health(
                self.engine,
                self.settings.heartbeat_stale_after_seconds,
                workers=self.settings.runs_on_workers,
                session=session,
            )
            revision, applied_revision, pending_commands = session.execute(
                select(
                    select(JobRevision.revision).where(JobRevision.id == 1).scalar_subquery(),
                    select(func.max(SchedulerInstance.applied_revision)).scalar_subquery(),
                    self._pending_commands_count().scalar_subquery(),
                )
            ).one()
            jobs = self._job_counts(session, revision or 0)
            # The health check read the database's clock after the heartbeats.
            since = health.checked_at - COUNTS_WINDOW
            counts = {queue: QueueCounts(queue=queue.value) for queue in Queue}
            found = session.execute(_day_counts_statement(), {"since": since}).one()
            for (queue, status), count in zip(_DAY_COUNTED, found, strict=True):
                field = _COUNTED[status]
                setattr(counts[queue], field, getattr(counts[queue], field) + count)
            return SchedulerStatus(
                healthy=health.scheduler.healthy,
                detail=health.scheduler.detail,
                instances=health.scheduler.instances,
                leader=health.scheduler.leader,
                epoch=health.scheduler.epoch,
                lease_expires_at=health.scheduler.lease_expires_at,
                jobs=JobCounts(
                    total=sum(jobs.values()),
                    scheduled=jobs[JobState.SCHEDULED],
                    paused=jobs[JobState.PAUSED],
                    unscheduled=jobs[JobState.UNSCHEDULED],
                    invalid=jobs[JobState.INVALID],
                ),
                queues=list(counts.values()),
                workers=health.workers,
                counts_since=since,
                pending_commands=pending_commands or 0,
                job_revision=revision or 0,
                applied_revision=applied_revision or 0,
            )

    # Changes

    def pause(self, job_id: str) -> CommandResult:
        """Stop a job's schedule until resumed; Conflict when it is not scheduled."""

        def change(session: Session, catalog: Catalog) -> str:
            definition = self._valid(catalog, job_id)
            row = catalog.rows.get(job_id)
            if row is None:
                session.add(new_row(definition, self.settings.timezone, utcnow(), paused=True))
            elif row.paused:
                raise Conflict(f"job {job_id!r} is already paused")
            else:
                _update(session, row, paused=True)
            return "paused: it runs again once resumed"

        return self._change(job_id, change, AuditAction.PAUSE)

    def resume(self, job_id: str) -> CommandResult:
        """Restart a paused job's schedule from now; Conflict when it is not paused."""

        def change(session: Session, catalog: Catalog) -> str:
            definition = self._valid(catalog, job_id)
            row = catalog.rows.get(job_id)
            if row is None or not row.paused:
                raise Conflict(f"job {job_id!r} is not paused")
            next_run = first_run(definition, self.settings.timezone, utcnow())
            _update(session, row, paused=False, next_run_at=next_run)
            return f"resumed: next run {_when(next_run)}"

        return self._change(job_id, change, AuditAction.RESUME)

    def reschedule(self, job_id: str, spec: Spec) -> CommandResult:
        """Give a job a new schedule; for a code job it lasts until the code changes its own."""
        self._check_schedule(spec)

        def change(session: Session, catalog: Catalog) -> str:
            definition = self._valid(catalog, job_id)
            if spec.timezone is None and definition.timezone is not None:
                # A schedule given without a zone keeps the job's own.
                effective = spec.model_copy(update={"timezone": definition.timezone})
            else:
                effective = spec
            changed = with_schedule(definition, effective)
            try:
                next_run = first_run(changed, self.settings.timezone, utcnow())
            except ScheduleError as error:
                raise InvalidInput({"schedule": str(error)}) from None
            row = catalog.rows.get(job_id)
            if row is None:
                row = new_row(definition, self.settings.timezone, utcnow())
                session.add(row)
                session.flush()
            _update(session, row, schedule=dump_spec(effective), next_run_at=next_run)
            if row.paused:
                return "rescheduled; still paused"
            return f"rescheduled: next run {_when(next_run)}"

        return self._change(job_id, change, AuditAction.RESCHEDULE)

    def run(self, job_id: str, arguments: dict[str, Any]) -> CommandResult:
        """Run a job now with `arguments`; its regular schedule is not moved."""
        job = self.job(job_id)
        if job.state is JobState.INVALID:
            raise Conflict(f"job {job_id!r} is invalid: fix or delete it")
        stored_input = self._parsed_input(job_id, arguments, "input")
        return self._plan(job_id, job.queue.value, stored_input, TriggerKind.MANUAL, None)

    def add(self, request: AddJobRequest) -> CommandResult:
        """Add a runtime job; Conflict when the id is taken."""
        functions = registered_functions(self.code)
        function = functions.get(request.function)
        if function is None:
            names = ", ".join(sorted(functions)) or "none"
            raise InvalidInput(
                {"function": f"{request.function!r} is not a registered job function ({names})"}
            )
        try:
            args = function.parse(request.args)
        except ArgumentError as error:
            raise InvalidInput({f"args.{k}": v for k, v in error.problems.items()}) from None
        self._check_schedule(request.schedule)
        definition = ScheduledJob(
            id=request.id,
            name=request.name,
            func=function.func,
            schedule=request.schedule.to_schedule(),
            timezone=request.schedule.timezone,
            queue=request.queue,
            priority=request.priority,
            inputs=function.inputs,
            args=args,
            origin=JobOrigin.RUNTIME,
        )

        def change(session: Session, catalog: Catalog) -> str:
            if request.id in catalog.jobs or request.id in catalog.rows:
                raise Conflict(f"a job with id {request.id!r} exists already")
            most = self.settings.runtime_jobs_max
            # Counted under the revision row's lock, which every change takes before it
            # commits: a concurrent add waits here and then counts this one's row too.
            session.execute(
                select(JobRevision.revision).where(JobRevision.id == 1).with_for_update()
            )
            stored = session.scalar(
                select(func.count()).select_from(Job).where(Job.origin == JobOrigin.RUNTIME)
            )
            if (stored or 0) >= most:
                raise InvalidInput(
                    {
                        "id": f"{stored} runtime jobs are stored, the most "
                        f"{ENV_PREFIX}RUNTIME_JOBS_MAX allows ({most}): delete one first"
                    }
                )
            row = new_row(definition, self.settings.timezone, utcnow())
            session.add(row)
            if row.next_run_at is None:
                return "added; its one run is in the past, so it is not scheduled"
            return f"added: next run {_when(row.next_run_at)}"

        return self._change(request.id, change, AuditAction.ADD)

    def delete(self, job_id: str) -> CommandResult:
        """Delete a runtime job and cancel its pending runs; Conflict for a code-defined one."""

        def change(session: Session, catalog: Catalog) -> str:
            row = catalog.rows.get(job_id)
            if row is None or row.origin != JobOrigin.RUNTIME:
                if job_id in catalog.jobs:
                    raise Conflict(
                        f"job {job_id!r} is defined in code and cannot be deleted here: pause "
                        "it, or remove it from app/components/scheduler/jobs.py"
                    )
                raise NotFound(f"no job {job_id!r}")
            session.execute(delete(Job).where(Job.id == job_id))
            pending = session.scalars(
                select(JobExecution.id).where(
                    JobExecution.job_id == job_id,
                    JobExecution.status == ExecutionStatus.PENDING,
                )
            ).all()
            cancelled = cancel_pending(
                session.connection(), pending, "its job was deleted before it started"
            )
            return f"deleted; {cancelled} pending run(s) cancelled" if cancelled else "deleted"

        return self._change(job_id, change, AuditAction.DELETE, show_job=False)

    def retry(self, execution_id: str) -> CommandResult:
        """Run a finished, unsuccessful run's job again with the same input."""
        with session_scope(self.engine) as session:
            row = self._execution_row(session, execution_id)
            status, job_id, queue, stored = row.status, row.job_id, row.queue, row.input
            known = job_id in self._catalog(session, only=[job_id]).jobs
        if not ExecutionStatus(status).is_retryable:
            raise Conflict(
                f"execution {execution_id} {ExecutionStatus(status).phrase}: only a run that "
                "ended without success can be retried"
            )
        if not known:
            raise Conflict(f"job {job_id!r} no longer exists")
        arguments = json.loads(stored) if stored else None
        return self._plan(job_id, queue, arguments, TriggerKind.RETRY, execution_id)

    def cancel(self, execution_id: str) -> CommandResult:
        """Stop a pending or running run; Conflict when it has ended."""
        with session_scope(self.engine) as session:
            row = self._execution_row(session, execution_id)
            status, job_id = row.status, row.job_id
        if ExecutionStatus(status).is_final:
            raise Conflict(
                f"execution {execution_id} {ExecutionStatus(status).phrase}: it has ended, "
                "so there is nothing to cancel"
            )
        return self._send(
            CommandKind.CANCEL,
            job_id,
            execution_id=execution_id,
            show_job=False,
            before={"status": str(status)},
        )

    # Internals

    def _has_tables(self) -> bool:
        return tables_exist(self.engine, Job.__tablename__)

    def _catalog(self, session: Session, only: Collection[str] | None = None) -> Catalog:
        if only is not None:
            only = [job_id for job_id in only if _storable(job_id)]
        if not self._has_tables():
            code = [job for job in self.code if only is None or job.id in only]
            return Catalog(jobs={job.id: job for job in code})
        return load_catalog(session, self.code, only)

    def _valid(self, catalog: Catalog, job_id: str) -> ScheduledJob:
        if job_id in catalog.invalid:
            raise Conflict(f"job {job_id!r} is invalid: fix or delete it")
        definition = catalog.jobs.get(job_id)
        if definition is None:
            raise NotFound(f"no job {job_id!r}")
        return definition

    def _job_counts(self, session: Session, revision: int) -> Counter[JobState]:
        if not self._has_tables():
            return Counter({JobState.UNSCHEDULED: len(self.code)})
        return Counter(self._job_query(session, revision).counts(session))

    def _figures(self, session: Session, job_ids: Sequence[str]) -> dict[str, RunFigures]:
        figures: dict[str, RunFigures] = {}
        if tables_exist(self.engine, JobExecution.__tablename__):
            figures = run_figures(session, job_ids)
        return {job_id: figures.get(job_id, RunFigures()) for job_id in job_ids}

    def _summary(self, job_id: str, catalog: Catalog, figures: RunFigures) -> JobSummary:
        definition = catalog.jobs.get(job_id)
        row = catalog.rows.get(job_id)
        next_run = None
        if definition is None or job_id in catalog.invalid:
            state, trigger, name = JobState.INVALID, "invalid", row.name if row else job_id
            origin, queue = JobOrigin.RUNTIME, Queue(row.queue) if row else Queue.DEFAULT
            priority = row.priority if row else 0
        else:
            name, queue, origin = definition.name, definition.queue, definition.origin
            priority = definition.priority
            trigger = self._describe(definition)
            if row is None or (row.next_run_at is None and not row.paused):
                state = JobState.UNSCHEDULED
            elif row.paused:
                state = JobState.PAUSED
            else:
                state, next_run = JobState.SCHEDULED, row.next_run_at
        return JobSummary(
            id=job_id,
            name=name,
            trigger=trigger,
            next_run_time=next_run,
            paused=state is JobState.PAUSED,
            origin=origin.value,
            state=state,
            queue=queue,
            priority=priority,
            running=figures.running,
            version=row.version if row else None,
            last_run=figures.last_run,
            success_rate=figures.success_rate,
            runs_counted=figures.runs_counted,
        )

    def _describe(self, definition: ScheduledJob) -> str:
        # A schedule is a dataclass of plain values, so its repr names it exactly.
        key = (repr(definition.schedule), definition.timezone, self.settings.timezone)
        description = _descriptions.get(key)
        if description is None:
            # From the trigger, not the spec: an interval of 99,999 days has no spec in seconds.
            try:
                description = describe_trigger(definition.trigger(self.settings.timezone))
            except ScheduleError as error:
                description = f"invalid: {error}"
            if len(_descriptions) >= _DESCRIPTIONS_KEPT:
                _descriptions.clear()
            _descriptions[key] = description
        return description

    def _detail(self, session: Session, job_id: str, catalog: Catalog) -> JobDetail:
        summary = self._summary(job_id, catalog, self._figures(session, [job_id])[job_id])
        definition = catalog.jobs.get(job_id)
        pending = self._pending_commands(session, job_id) if self._has_tables() else 0
        usable = definition if job_id not in catalog.invalid else None
        function = usable.function if usable else None
        return JobDetail(
            **summary.model_dump(),
            function=function.name if function else "",
            inputs=function.describe_inputs() if function else {},
            args=function.to_json(usable.args) if function and usable else {},
            timezone=usable.timezone if usable else None,
            max_instances=usable.max_instances if usable else 1,
            retry_attempts=usable.retry.attempts if usable else 1,
            timeout_seconds=usable.timeout.total_seconds() if usable and usable.timeout else None,
            catch_up=usable.catch_up if usable else None,
            schedule_overridden=catalog.overridden(job_id),
            problem=catalog.invalid.get(job_id),
            pending_commands=pending,
            next_fires=self._next_fires(summary, usable),
        )

    def _next_fires(self, summary: JobSummary, definition: ScheduledJob | None) -> list[NextFire]:
        if definition is None or summary.state is not JobState.SCHEDULED:
            return []
        zone = ZoneInfo(definition.timezone or self.settings.timezone)
        try:
            trigger = definition.trigger(self.settings.timezone)
        except ScheduleError:
            return []
        fires = upcoming_fires(trigger, zone, summary.next_run_time, utcnow(), NEXT_FIRES)
        return [
            NextFire(at=fire.at, local_time=fire.at.isoformat(), dst=fire.dst) for fire in fires
        ]

    def _pending_commands(self, session: Session, job_id: str | None = None) -> int:
        return session.scalar(self._pending_commands_count(job_id)) or 0

    @staticmethod
    def _pending_commands_count(job_id: str | None = None) -> Select[int]:
        conditions = [SchedulerCommand.status == CommandStatus.PENDING]
        if job_id is not None:
            conditions.append(SchedulerCommand.job_id == job_id)
        return select(func.count()).select_from(SchedulerCommand).where(*conditions)

    def _execution_row(self, session: Session, execution_id: str) -> JobExecution:
        exists = tables_exist(self.engine, JobExecution.__tablename__)
        row = (
            session.get(JobExecution, execution_id) if exists and _storable(execution_id) else None
        )
        if row is None:
            raise NotFound(f"no execution {execution_id!r}")
        return row

    def _parsed_input(self, job_id: str, arguments: dict[str, Any], field: str) -> dict[str, Any]:
        with session_scope(self.engine) as session:
            definition = self._catalog(session, only=[job_id]).jobs[job_id]
        try:
            return definition.function.to_json(definition.function.parse(arguments))
        except ArgumentError as error:
            raise InvalidInput({f"{field}.{k}": v for k, v in error.problems.items()}) from None

    def _check_schedule(self, spec: Spec) -> None:
        """Refuse a one-time run in the past, and a period shorter than the setting allows."""
        if isinstance(spec, OnceSpec) and spec.at <= utcnow():
            raise InvalidInput({"schedule.at": "is in the past: give a future time"})
        shortest = self.settings.runtime_job_min_interval_seconds
        gap = self._shortest_gap(spec)
        if gap is not None and gap < shortest:
            raise InvalidInput(
                {
                    "schedule": f"repeats every {gap:g} s, more often than "
                    f"{ENV_PREFIX}RUNTIME_JOB_MIN_INTERVAL_SECONDS allows ({shortest:g} s)"
                }
            )

    def _shortest_gap(self, spec: Spec) -> float | None:
        """The shortest time between two runs of a recurring schedule, in seconds.

        An interval's period; for a cron schedule (which may name seconds), the shortest gap
        among its next `_GAPS_SAMPLED` times. None for a single run, or a schedule that is
        invalid (refused with its own reason later).
        """
        if isinstance(spec, OnceSpec):
            return None
        if isinstance(spec, IntervalSpec):
            return spec.period_seconds
        try:
            trigger = spec.to_schedule().to_trigger(
                ZoneInfo(spec.timezone or self.settings.timezone)
            )
        except (ScheduleError, ValueError):
            return None
        fires: list[datetime] = []
        previous: datetime | None = None
        moment = utcnow()
        for _ in range(_GAPS_SAMPLED + 1):
            fire = trigger.get_next_fire_time(previous, previous or moment)
            if fire is None:
                break
            fires.append(fire)
            previous = fire
        gaps = [(later - earlier).total_seconds() for earlier, later in pairwise(fires)]
        return min(gaps) if gaps else None

    def require_tables(self) -> None:
        """NotReady until the migrations have made the tables (the first scheduler does)."""
        if not self._has_tables():
            raise NotReady(
                "the database has no scheduler tables yet: run the migrations "
                "(start the scheduler once, or run the db upgrade command)"
            )

    def _change(
        self, job_id: str, change: Change, action: AuditAction, *, show_job: bool = True
    ) -> CommandResult:
        """Make a row change and raise the job revision, then wait for the leader to apply it.

        The audit entry is written in the change's transaction, with the row before and after.
        """
        self.require_tables()
        stale_after = self.settings.heartbeat_stale_after_seconds
        with write_session(self.engine) as session:
            catalog = load_catalog(session, self.code, only=[job_id])
            before = audit.job_state(catalog.rows.get(job_id))
            detail = change(session, catalog)
            session.flush()
            after = audit.job_state(session.get(Job, job_id, populate_existing=True))
            revision = next_revision(session)
            entry = audit.record(
                session,
                self.actor,
                action,
                job_id=job_id,
                before=before,
                after=after,
                revision=revision,
            )
            running = scheduler_running(session, stale_after)
        if not running:
            status = CommandStatus.PENDING
            detail = "no scheduler is running: the change is stored and applies when it starts"
        elif self._applied(revision):
            status = CommandStatus.APPLIED
        else:
            status = CommandStatus.PENDING
            detail = (
                "the scheduler did not confirm within "
                f"{self.settings.command_wait_seconds:g} s: the change is stored and applies "
                "when the scheduler reads it"
            )
        audit.settle(self.engine, entry, status, detail)
        return CommandResult(
            status=status,
            detail=detail,
            job_id=job_id,
            revision=revision,
            job=self._job_or_none(job_id) if show_job else None,
        )

    def _applied(self, revision: int) -> bool:
        """Wait until a running leader reports `revision` applied; False after the wait."""
        deadline = time.monotonic() + self.settings.command_wait_seconds
        query = select(func.max(SchedulerInstance.applied_revision)).where(
            SchedulerInstance.state == SchedulerState.RUNNING
        )
        while True:
            with self.engine.connect() as connection:
                applied = connection.execute(query).scalar() or 0
            if applied >= revision:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECONDS)

    def _job_or_none(self, job_id: str) -> JobDetail | None:
        try:
            return self.job(job_id)
        except NotFound:
            return None

    def _plan(
        self,
        job_id: str,
        queue: str,
        arguments: dict[str, Any] | None,
        kind: TriggerKind,
        retry_of: str | None,
    ) -> CommandResult:
        execution_id = new_execution_id()

        def record(session: Session) -> None:
            # The run is in the history from the moment it is asked for, so its id can be
            # followed at once, whether or not a scheduler is running.
            add_planned(
                session,
                job_id,
                queue,
                execution_id=execution_id,
                trigger_kind=kind,
                arguments=arguments,
                retry_of=retry_of,
            )

        kind_name = CommandKind.RETRY if retry_of else CommandKind.RUN
        after: dict[str, Any] = {"execution_id": execution_id, "input": arguments}
        if retry_of:
            after["retry_of"] = retry_of
        return self._send(kind_name, job_id, execution_id=execution_id, also=record, after=after)

    def _send(
        self,
        kind: CommandKind,
        job_id: str,
        *,
        execution_id: str | None = None,
        also: Callable[[Session], None] | None = None,
        show_job: bool = True,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> CommandResult:
        self.require_tables()
        entry = ""
        command_id = new_command_id()

        def with_audit(session: Session) -> None:
            nonlocal entry
            if also is not None:
                also(session)
            entry = audit.record(
                session,
                self.actor,
                AuditAction(kind.value),
                job_id=job_id,
                execution_id=execution_id,
                before=before,
                after=after,
                command_id=command_id,
            )

        outcome = send_command(
            self.engine,
            kind,
            command_id=command_id,
            job_id=job_id,
            execution_id=execution_id,
            also=with_audit,
            stale_after_seconds=self.settings.heartbeat_stale_after_seconds,
            wait_seconds=self.settings.command_wait_seconds,
        )
        audit.settle(self.engine, entry, outcome.status, outcome.detail)
        return CommandResult(
            command_id=outcome.command_id,
            status=outcome.status,
            detail=outcome.detail,
            job_id=job_id,
            execution_id=execution_id,
            job=self._job_or_none(job_id) if show_job else None,
        )


# Built once per limit: an ORM statement over an aliased union costs more to build than to run.
@lru_cache(maxsize=8)
def _recent_failures_statement(limit: int) -> Select[Any]:
    latest = aliased(
        JobExecution,
        latest_runs_of_each(
            JobExecution.__table__.c, [JobExecution.status == s for s in FAILED_ENDS], limit
        ).subquery(),
    )
    return select(latest).order_by(latest.scheduled_at.desc(), latest.id.desc()).limit(limit)


@lru_cache(maxsize=8)
def _not_run_statement(limit: int) -> CompoundSelect[Any]:
    """A job's latest `limit` runs of each status in NOT_RUN (the job's id is the `job`
    parameter)."""
    columns = (
        JobExecution.id,
        JobExecution.scheduled_at,
        JobExecution.status,
        JobExecution.error_message,
    )
    job = JobExecution.job_id == bindparam("job")
    return latest_runs_of_each(
        columns, [and_(job, JobExecution.status == status) for status in NOT_RUN], limit
    )


# How many of a cron schedule's next times `_shortest_gap` looks at.
_GAPS_SAMPLED = 20


def _run_conditions(
    job_id: str | None,
    status: ExecutionStatus | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Any]:
    """The filters of a listing of runs: by job, status, and scheduled time."""
    conditions: list[Any] = []
    if job_id is not None:
        conditions.append(JobExecution.job_id == job_id if _storable(job_id) else false())
    if status is not None:
        conditions.append(JobExecution.status == status)
    if since is not None:
        conditions.append(JobExecution.scheduled_at >= since)
    if until is not None:
        conditions.append(JobExecution.scheduled_at < until)
    return conditions


_CURSOR_ID = re.compile(r"[0-9A-Za-z]{1,32}")
_UNPRINTABLE = re.compile(f"[{CONTROL_CHARACTERS}]")


def _storable(identifier: str) -> bool:
    """Whether an id from a request can name a row at all: no id holds a control character,
    and PostgreSQL refuses a NUL in a query outright."""
    return not _UNPRINTABLE.search(identifier)


def cursor_of(scheduled_at: datetime, execution_id: str) -> str:
    """Where a page of runs ends, as `execution_feed` takes it back."""
    return f"{iso_utc(scheduled_at)}~{execution_id}"


def parse_cursor(cursor: str) -> tuple[datetime, str]:
    """A cursor's time and id; InvalidInput when it is not one `cursor_of` wrote."""
    at, _, execution_id = cursor.partition("~")
    try:
        parsed = datetime.fromisoformat(at)
        moment = parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        moment = None
    if moment is None or not _CURSOR_ID.fullmatch(execution_id):
        raise InvalidInput({"before": "is not a page cursor of this listing: start again"})
    return moment, execution_id


def _when(moment: datetime | None) -> str:
    return iso_utc(moment) if moment else "none"


def _update(session: Session, row: Job, **values: Any) -> None:
    """Change a row if nobody changed it since it was read; Conflict otherwise."""
    result = session.execute(
        update(Job)
        .where(Job.id == row.id, Job.version == row.version)
        .values(**values, version=row.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        raise Conflict(f"job {row.id!r} was changed by someone else meanwhile: try again")


_COUNTED = {
    ExecutionStatus.PENDING: "pending",
    ExecutionStatus.RUNNING: "running",
    ExecutionStatus.SUCCEEDED: "succeeded",
    ExecutionStatus.FAILED: "failed",
    ExecutionStatus.TIMED_OUT: "failed",
}


# The queue and status pairs a day's counts are read for, in the order of their columns.
_DAY_COUNTED = [(queue, status) for queue in Queue for status in _COUNTED]


@lru_cache(maxsize=1)
def _day_counts_statement() -> Select[Any]:
    """Runs per queue and status since `since` (every unfinished one, however old): one count
    of one index range per pair. Grouping the day's runs instead reads each of them."""
    counts = []
    for queue, status in _DAY_COUNTED:
        conditions = [JobExecution.queue == queue, JobExecution.status == status]
        if status not in UNFINISHED:
            conditions.append(JobExecution.scheduled_at >= bindparam("since"))
        counts.append(select(func.count()).where(*conditions).scalar_subquery())
    return select(*counts)


def _execution_fields(row: JobExecution) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in ExecutionDetail.model_fields if name != "input"}
    data["input"] = json.loads(row.input) if row.input else None
    return data
