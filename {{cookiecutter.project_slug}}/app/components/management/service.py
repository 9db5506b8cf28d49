"""Managing jobs and runs: the one implementation behind the API and the CLI.

Reads come from the database the scheduler writes; changes go to the scheduler as commands
(see `app/components/scheduler/commands.py`), never straight into APScheduler's store.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.components.management.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    NotReady,
)
from app.components.management.schemas import (
    AddJobRequest,
    CommandResult,
    ExecutionDetail,
    ExecutionInfo,
    ExecutionPage,
    FunctionInfo,
    InstanceInfo,
    JobCounts,
    JobDetail,
    JobPage,
    JobSummary,
    LastRun,
    QueueCounts,
    SchedulerStatus,
)
from app.components.scheduler.catalog import (
    Catalog,
    code_trigger,
    load_catalog,
    registered_functions,
)
from app.components.scheduler.commands import CommandKind, send_command
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.functions import ArgumentError
from app.components.scheduler.store_ids import RUN_MARK
from app.core.db import database_now, session_scope, tables_exist, utcnow
from app.core.enums import CommandStatus, ExecutionStatus, JobState, Queue, TriggerKind
from app.core.health import check_health
from app.core.job_store import StoredJob, read_stored_jobs
from app.core.models import (
    JobExecution,
    RuntimeJob,
    ScheduleOverride,
    SchedulerCommand,
    SchedulerInstance,
)
from app.core.schedule_specs import CronSpec, IntervalSpec, OnceSpec
from app.core.schedules import ScheduleError, describe_trigger
from app.core.settings import Settings

Spec = CronSpec | IntervalSpec | OnceSpec
RATE_WINDOW = 100
COUNTS_WINDOW = timedelta(hours=24)
_RATE_STATUSES = (
    ExecutionStatus.SUCCEEDED,
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMED_OUT,
    ExecutionStatus.INTERRUPTED,
)
_RETRYABLE = (
    ExecutionStatus.FAILED,
    ExecutionStatus.TIMED_OUT,
    ExecutionStatus.INTERRUPTED,
    ExecutionStatus.MISSED,
    ExecutionStatus.SKIPPED,
    ExecutionStatus.CANCELLED,
)


class Management:
    """Jobs, runs and the scheduler's status, on the shared database."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    # Reads

    def list_jobs(
        self,
        state: JobState | None = None,
        queue: Queue | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JobPage:
        """Jobs, soonest next run first, filtered by state and queue."""
        jobs = [
            job
            for job in self._summaries()
            if (state is None or job.state == state) and (queue is None or job.queue == queue)
        ]
        return JobPage(
            items=jobs[offset : offset + limit], total=len(jobs), limit=limit, offset=offset
        )

    def job(self, job_id: str) -> JobDetail:
        """One job in full; NotFound for an unknown id."""
        catalog, stored = self._catalog(), self._stored(job_id)
        definition = catalog.jobs.get(job_id)
        if definition is None and job_id not in catalog.invalid:
            raise NotFound(f"no job {job_id!r}")
        with session_scope(self.engine) as session:
            return self._detail(session, job_id, catalog, stored)

    def functions(self) -> list[FunctionInfo]:
        """The functions runtime jobs may call."""
        return [
            FunctionInfo(name=name, inputs=function.describe_inputs())
            for name, function in sorted(registered_functions().items())
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
        conditions: list[Any] = []
        if job_id is not None:
            conditions.append(JobExecution.job_id == job_id)
        if status is not None:
            conditions.append(JobExecution.status == status)
        if since is not None:
            conditions.append(JobExecution.scheduled_at >= since)
        if until is not None:
            conditions.append(JobExecution.scheduled_at < until)
        if not self._has_tables():
            if job_id is not None and job_id not in self._catalog().jobs:
                raise NotFound(f"no job {job_id!r}")
            return ExecutionPage(items=[], total=0, limit=limit, offset=offset)
        with session_scope(self.engine) as session:
            total = session.scalar(
                select(func.count()).select_from(JobExecution).where(*conditions)
            )
            if job_id is not None and not total:
                catalog = self._catalog()
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

    def execution(self, execution_id: str) -> ExecutionDetail:
        """One run with its traceback; NotFound for an unknown id."""
        with session_scope(self.engine) as session:
            row = self._execution_row(session, execution_id)
            return ExecutionDetail.model_validate(_execution_fields(row))

    def status(self) -> SchedulerStatus:
        """Instances and heartbeats, job counts, and executions per queue since a day ago."""
        health = check_health(self.engine, self.settings.heartbeat_stale_after_seconds)
        jobs = Counter(job.state for job in self._summaries())
        with session_scope(self.engine) as session:
            now = database_now(session.connection())
            since = now - COUNTS_WINDOW
            instances = session.scalars(
                select(SchedulerInstance).order_by(SchedulerInstance.last_seen.desc()).limit(20)
            ).all()
            stale_after = self.settings.heartbeat_stale_after_seconds
            counts: dict[str, QueueCounts] = {q.value: QueueCounts(queue=q.value) for q in Queue}
            rows = session.execute(
                select(JobExecution.queue, JobExecution.status, func.count())
                .where(
                    (JobExecution.scheduled_at >= since)
                    | JobExecution.status.in_((ExecutionStatus.PENDING, ExecutionStatus.RUNNING))
                )
                .group_by(JobExecution.queue, JobExecution.status)
            ).all()
            for queue_name, status, count in rows:
                entry = counts.setdefault(queue_name, QueueCounts(queue=queue_name))
                field = _COUNTED.get(ExecutionStatus(status))
                if field:
                    setattr(entry, field, getattr(entry, field) + count)
            pending_commands = self._pending_commands(session)
            return SchedulerStatus(
                healthy=health.scheduler.healthy,
                detail=health.scheduler.detail,
                instances=[
                    InstanceInfo(
                        instance_id=i.instance_id,
                        hostname=i.hostname,
                        pid=i.pid,
                        state=i.state,
                        started_at=i.started_at,
                        last_seen=i.last_seen,
                        heartbeat_age_seconds=round((now - i.last_seen).total_seconds(), 3),
                        fresh=(now - i.last_seen).total_seconds() <= stale_after,
                        job_count=i.job_count,
                    )
                    for i in instances
                ],
                jobs=JobCounts(
                    total=sum(jobs.values()),
                    scheduled=jobs[JobState.SCHEDULED],
                    paused=jobs[JobState.PAUSED],
                    unscheduled=jobs[JobState.UNSCHEDULED],
                    invalid=jobs[JobState.INVALID],
                ),
                queues=list(counts.values()),
                counts_since=since,
                pending_commands=pending_commands,
            )

    # Changes

    def pause(self, job_id: str) -> CommandResult:
        """Stop a job's schedule until resumed; Conflict when it is not scheduled."""
        state = self.job(job_id).state
        if state is JobState.PAUSED:
            raise Conflict(f"job {job_id!r} is already paused")
        if state is JobState.INVALID:
            raise Conflict(f"job {job_id!r} is invalid: fix or delete it")
        return self._send(CommandKind.PAUSE, job_id)

    def resume(self, job_id: str) -> CommandResult:
        """Restart a paused job's schedule; Conflict when it is not paused."""
        if self.job(job_id).state is not JobState.PAUSED:
            raise Conflict(f"job {job_id!r} is not paused")
        return self._send(CommandKind.RESUME, job_id)

    def reschedule(self, job_id: str, spec: Spec) -> CommandResult:
        """Give a job a new schedule; it lasts until the code changes the job's own."""
        job = self.job(job_id)
        if job.state is JobState.INVALID:
            raise Conflict(f"job {job_id!r} is invalid: fix or delete it")
        schedule_json = spec.model_dump_json(exclude_none=True)
        self._check_future(spec)

        def keep(session: Session) -> None:
            if job.origin == "runtime":
                row = session.get(RuntimeJob, job_id)
                if row is None:
                    raise NotFound(f"no job {job_id!r}")
                row.schedule = schedule_json
                return
            session.merge(
                ScheduleOverride(
                    job_id=job_id,
                    schedule=schedule_json,
                    code_trigger=code_trigger(job_id, self.settings.timezone) or "",
                    changed_at=utcnow(),
                )
            )

        return self._send(
            CommandKind.RESCHEDULE,
            job_id,
            payload={"schedule": json.loads(schedule_json)},
            also=keep,
        )

    def run(self, job_id: str, arguments: dict[str, Any]) -> CommandResult:
        """Run a job now with `arguments`; its regular schedule is not moved."""
        job = self.job(job_id)
        if job.state is JobState.INVALID:
            raise Conflict(f"job {job_id!r} is invalid: fix or delete it")
        stored_input = self._parsed_input(job_id, arguments, "input")
        return self._plan(job_id, job.queue.value, stored_input, TriggerKind.MANUAL, None)

    def add(self, request: AddJobRequest) -> CommandResult:
        """Add a runtime job; Conflict when the id is taken."""
        catalog = self._catalog()
        if request.id in catalog.jobs or request.id in catalog.invalid:
            raise Conflict(f"a job with id {request.id!r} exists already")
        function = registered_functions().get(request.function)
        if function is None:
            names = ", ".join(sorted(registered_functions())) or "none"
            raise InvalidInput(
                {"function": f"{request.function!r} is not a registered job function ({names})"}
            )
        try:
            args = function.to_json(function.parse(request.args))
        except ArgumentError as error:
            raise InvalidInput({f"args.{k}": v for k, v in error.problems.items()}) from None
        self._check_future(request.schedule)
        schedule = request.schedule.model_dump(mode="json", exclude_none=True)
        payload = {
            "name": request.name,
            "function": request.function,
            "args": args,
            "schedule": schedule,
            "queue": request.queue.value,
        }

        def store(session: Session) -> None:
            session.add(
                RuntimeJob(
                    id=request.id,
                    name=request.name,
                    function=request.function,
                    args=json.dumps(args),
                    schedule=json.dumps(schedule),
                    queue=request.queue.value,
                    created_at=utcnow(),
                )
            )

        return self._send(CommandKind.ADD, request.id, payload=payload, also=store)

    def delete(self, job_id: str) -> CommandResult:
        """Delete a runtime job; Conflict for a code-defined one."""
        job = self.job(job_id)
        if job.origin == "code":
            raise Conflict(
                f"job {job_id!r} is defined in code and cannot be deleted here: pause it, or "
                "remove it from app/components/scheduler/jobs.py"
            )

        def forget(session: Session) -> None:
            row = session.get(RuntimeJob, job_id)
            if row is not None:
                session.delete(row)

        return self._send(CommandKind.DELETE, job_id, also=forget, show_job=False)

    def retry(self, execution_id: str) -> CommandResult:
        """Run a finished, unsuccessful run's job again with the same input."""
        with session_scope(self.engine) as session:
            row = self._execution_row(session, execution_id)
            status, job_id, queue, stored = row.status, row.job_id, row.queue, row.input
        if status not in _RETRYABLE:
            raise Conflict(
                f"execution {execution_id} is {status}: only a run that ended without "
                "success can be retried"
            )
        if job_id not in self._catalog().jobs:
            raise Conflict(f"job {job_id!r} no longer exists")
        arguments = json.loads(stored) if stored else None
        return self._plan(job_id, queue, arguments, TriggerKind.RETRY, execution_id)

    def cancel(self, execution_id: str) -> CommandResult:
        """Stop a pending or running run; Conflict when it has ended."""
        with session_scope(self.engine) as session:
            row = self._execution_row(session, execution_id)
            status, job_id = row.status, row.job_id
        if status not in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING):
            raise Conflict(f"execution {execution_id} has ended ({status}): nothing to cancel")
        return self._send(CommandKind.CANCEL, job_id, execution_id=execution_id, show_job=False)

    # Internals

    def _has_tables(self) -> bool:
        return tables_exist(self.engine, JobExecution.__tablename__)

    def _catalog(self) -> Catalog:
        return load_catalog(self.engine, self.settings.timezone)

    def _stored(self, job_id: str | None = None) -> dict[str, StoredJob]:
        jobs = read_stored_jobs(self.engine, job_id)
        return {job.id: job for job in jobs if RUN_MARK not in job.id}

    def _summaries(self) -> list[JobSummary]:
        catalog, stored = self._catalog(), self._stored()
        running = self._running_counts()
        summaries = [
            self._summary(job_id, catalog, stored, running)
            for job_id in [*catalog.jobs, *catalog.invalid]
        ]
        # Soonest first, then paused and unscheduled ones by id.
        return sorted(
            summaries,
            key=lambda job: (job.next_run_time is None, job.next_run_time or utcnow(), job.id),
        )

    def _running_counts(self) -> Counter[str]:
        if not self._has_tables():
            return Counter()
        with session_scope(self.engine) as session:
            rows = session.execute(
                select(JobExecution.job_id, func.count())
                .where(JobExecution.status == ExecutionStatus.RUNNING)
                .group_by(JobExecution.job_id)
            ).all()
        return Counter({job_id: int(count) for job_id, count in rows})

    def _summary(
        self,
        job_id: str,
        catalog: Catalog,
        stored: dict[str, StoredJob],
        running: Counter[str],
    ) -> JobSummary:
        definition = catalog.jobs.get(job_id)
        in_store = stored.get(job_id)
        if definition is None:
            state, trigger, name, origin = JobState.INVALID, "invalid", job_id, "runtime"
            queue = Queue.DEFAULT
        else:
            name, queue, origin = definition.name, definition.queue, definition.origin
            if in_store is not None:
                trigger = in_store.trigger
                state = JobState.PAUSED if in_store.next_run_time is None else JobState.SCHEDULED
            else:
                trigger = self._describe(definition)
                state = JobState.UNSCHEDULED
        next_run = in_store.next_run_time if in_store else None
        return JobSummary(
            id=job_id,
            name=name,
            trigger=trigger,
            next_run_time=next_run,
            paused=state is JobState.PAUSED,
            origin="runtime" if origin == "runtime" else "code",
            state=state,
            queue=queue,
            running=running[job_id],
        )

    def _describe(self, definition: ScheduledJob) -> str:
        try:
            return describe_trigger(definition.trigger(self.settings.timezone))
        except ScheduleError as error:
            return f"invalid: {error}"

    def _detail(
        self, session: Session, job_id: str, catalog: Catalog, stored: dict[str, StoredJob]
    ) -> JobDetail:
        summary = self._summary(job_id, catalog, stored, self._running_counts())
        definition = catalog.jobs.get(job_id)
        last_run, rate, counted, pending = None, None, 0, 0
        overridden = False
        if self._has_tables():
            last = session.scalars(
                select(JobExecution)
                .where(
                    JobExecution.job_id == job_id,
                    JobExecution.status.not_in((ExecutionStatus.PENDING, ExecutionStatus.RUNNING)),
                )
                .order_by(JobExecution.scheduled_at.desc())
                .limit(1)
            ).first()
            if last is not None:
                last_run = LastRun(
                    execution_id=last.id,
                    status=last.status,
                    scheduled_at=last.scheduled_at,
                    finished_at=last.finished_at,
                    error_message=last.error_message,
                )
            recent = session.scalars(
                select(JobExecution.status)
                .where(JobExecution.job_id == job_id, JobExecution.status.in_(_RATE_STATUSES))
                .order_by(JobExecution.scheduled_at.desc())
                .limit(RATE_WINDOW)
            ).all()
            counted = len(recent)
            if counted:
                rate = round(recent.count(ExecutionStatus.SUCCEEDED) / counted, 4)
            pending = self._pending_commands(session, job_id)
            overridden = session.get(ScheduleOverride, job_id) is not None and (
                job_id not in catalog.stale_overrides
            )
        function = definition.function if definition else None
        return JobDetail(
            **summary.model_dump(),
            function=function.name if function else "",
            inputs=function.describe_inputs() if function else {},
            args=function.to_json(definition.args) if function and definition else {},
            timezone=definition.timezone if definition else None,
            max_instances=definition.max_instances if definition else 1,
            retry_attempts=definition.retry.attempts if definition else 1,
            timeout_seconds=definition.timeout.total_seconds()
            if definition and definition.timeout
            else None,
            schedule_overridden=overridden,
            problem=catalog.invalid.get(job_id),
            last_run=last_run,
            success_rate=rate,
            runs_counted=counted,
            pending_commands=pending,
        )

    def _pending_commands(self, session: Session, job_id: str | None = None) -> int:
        conditions = [SchedulerCommand.status == CommandStatus.PENDING]
        if job_id is not None:
            conditions.append(SchedulerCommand.job_id == job_id)
        return (
            session.scalar(select(func.count()).select_from(SchedulerCommand).where(*conditions))
            or 0
        )

    def _execution_row(self, session: Session, execution_id: str) -> JobExecution:
        row = session.get(JobExecution, execution_id) if self._has_tables() else None
        if row is None:
            raise NotFound(f"no execution {execution_id!r}")
        return row

    def _parsed_input(self, job_id: str, arguments: dict[str, Any], field: str) -> dict[str, Any]:
        definition = self._catalog().jobs[job_id]
        try:
            return definition.function.to_json(definition.function.parse(arguments))
        except ArgumentError as error:
            raise InvalidInput({f"{field}.{k}": v for k, v in error.problems.items()}) from None

    def _check_future(self, spec: Spec) -> None:
        if isinstance(spec, OnceSpec) and spec.at <= utcnow():
            raise InvalidInput({"schedule.at": "is in the past: give a future time"})

    def _plan(
        self,
        job_id: str,
        queue: str,
        arguments: dict[str, Any] | None,
        kind: TriggerKind,
        retry_of: str | None,
    ) -> CommandResult:
        execution_id = uuid.uuid4().hex

        def record(session: Session) -> None:
            # The run is in the history from the moment it is asked for, so its id can be
            # followed at once, whether or not a scheduler is running.
            session.add(
                JobExecution(
                    id=execution_id,
                    job_id=job_id,
                    queue=queue,
                    scheduled_at=utcnow(),
                    status=ExecutionStatus.PENDING,
                    attempt=1,
                    trigger_kind=kind,
                    instance_id="",
                    input=json.dumps(arguments) if arguments else None,
                    retry_of=retry_of,
                )
            )

        kind_name = CommandKind.RETRY if retry_of else CommandKind.RUN
        return self._send(
            kind_name,
            job_id,
            execution_id=execution_id,
            payload={"arguments": arguments or {}, "trigger_kind": kind.value},
            also=record,
        )

    def _send(
        self,
        kind: CommandKind,
        job_id: str,
        *,
        execution_id: str | None = None,
        payload: dict[str, Any] | None = None,
        also: Callable[[Session], None] | None = None,
        show_job: bool = True,
    ) -> CommandResult:
        if not self._has_tables():
            raise NotReady(
                "the database has no scheduler tables yet: start the scheduler once to create them"
            )
        outcome = send_command(
            self.engine,
            kind,
            job_id=job_id,
            execution_id=execution_id,
            payload=payload,
            also=also,
            stale_after_seconds=self.settings.heartbeat_stale_after_seconds,
            wait_seconds=self.settings.command_wait_seconds,
        )
        job = None
        if show_job:
            try:
                job = self.job(job_id)
            except NotFound:
                job = None
        return CommandResult(
            command_id=outcome.command_id,
            status=outcome.status,
            detail=outcome.detail,
            job_id=job_id,
            execution_id=execution_id,
            job=job,
        )


_COUNTED = {
    ExecutionStatus.PENDING: "pending",
    ExecutionStatus.RUNNING: "running",
    ExecutionStatus.SUCCEEDED: "succeeded",
    ExecutionStatus.FAILED: "failed",
    ExecutionStatus.TIMED_OUT: "failed",
}


def _execution_fields(row: JobExecution) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in ExecutionDetail.model_fields if name != "input"}
    data["input"] = json.loads(row.input) if row.input else None
    return data
