"""The project's tables: every fact the processes share is a plain column here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    String,
    Text,
    case,
    false,
    null,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import Grouping

from app.core.db import Base, UTCDateTime
from app.core.enums import (
    ActorKind,
    AuditAction,
    CommandStatus,
    ExecutionStatus,
    JobOrigin,
    SchedulerState,
    TriggerKind,
    WorkerState,
)


class Job(Base):
    """A job: its schedule as structured data, whether it is paused, and its next run.

    The API and the CLI change a row (and `version`) in one transaction; the leading scheduler
    applies the change, and advances `next_run_at` in the transaction that claims each run.
    """

    __tablename__ = "jobs"
    # The leader reads the runtime jobs coming within its horizon by their next run.
    __table_args__ = (Index("ix_jobs_next_run_at", "next_run_at"),)

    id: Mapped[str] = mapped_column(String(191), primary_key=True)
    origin: Mapped[JobOrigin] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    # A registered job function, by name; never an import path.
    function: Mapped[str] = mapped_column(String(191))
    # Fixed JSON arguments of every run (runtime jobs); "{}" for code-defined ones.
    args: Mapped[str] = mapped_column(Text, default="{}")
    queue: Mapped[str] = mapped_column(String(16))
    # Within its queue, a run of a job of higher priority is taken first (worker processes).
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # How many of its runs may go at once; on the row so that every worker process holds
    # to the same limit, whatever code it runs.
    max_instances: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The schedule that applies, as a schedule spec in JSON (see app/core/schedule_specs.py).
    schedule: Mapped[str] = mapped_column(Text)
    # Code-defined jobs: the code's own schedule when the row was last set from it. While it
    # stays the code's, a schedule changed through the API lasts; a new one in code wins.
    code_schedule: Mapped[str | None] = mapped_column(Text)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # The next scheduled time not yet claimed; None when nothing more is due (a one-time job
    # that has run).
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Failed or timed-out runs in a row since the last success, as worker processes record
    # each end (a scheduler running the runs itself counts them in memory).
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# What a listing of jobs sorts by: the next run, soonest first, then the paused and the
# unscheduled ones, by id. The index holds these very expressions, so a page of the listing is
# read from it in order, however deep, instead of sorting every job.
# (In parentheses: PostgreSQL takes an index expression only in them.)
LISTED_NEXT_RUN = Grouping(case((Job.paused, null()), else_=Job.next_run_at))
JOB_LISTING_ORDER = (LISTED_NEXT_RUN.is_(None), LISTED_NEXT_RUN, Job.id)
Index("ix_jobs_listing", *JOB_LISTING_ORDER)


class JobRevision(Base):
    """One counter, raised by every change to `jobs`: the leader polls it on SQLite."""

    __tablename__ = "job_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)


class SchedulerLease(Base):
    """Who leads, until when, and under which epoch (raised by each new leader).

    Every claimed run carries the epoch of the leader that claimed it; the claim is made only
    while that epoch is the current lease (`app/components/scheduler/lease.py`).
    """

    __tablename__ = "scheduler_lease"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # On the database's clock; the holder renews it before then, or loses the lease.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Whether the holder also holds the leader lock, whose release tells a standby it died.
    holder_locked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class SchedulerInstance(Base):
    """One row per scheduler process: its heartbeat, read by the API and the CLI."""

    __tablename__ = "scheduler_instances"

    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    state: Mapped[SchedulerState] = mapped_column(String(16))
    job_count: Mapped[int] = mapped_column(Integer, default=0)
    # The job revision this instance has applied, when it leads: a change is "applied" once
    # the leader reports its revision here.
    applied_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class WorkerProcess(Base):
    """One row per worker process: its heartbeat, its queues and its load, read by the API,
    the CLI and the metrics."""

    __tablename__ = "worker_processes"

    # The id its runs carry in `job_executions.worker_id`.
    worker_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    state: Mapped[WorkerState] = mapped_column(String(16))
    # The queues it serves and how many runs of each it runs at once, as JSON
    # ({"critical": 6, "default": 3}).
    concurrency: Mapped[str] = mapped_column(Text)
    # Runs in progress on it at its last heartbeat.
    running: Mapped[int] = mapped_column(Integer, default=0)


class JobExecution(Base):
    """One row per run of a job, written by the scheduler, read by the API and the CLI."""

    __tablename__ = "job_executions"
    __table_args__ = (
        # The newest runs first: of all, of one job, of one status. Each index holds the id
        # too, the tie-break of the order, so a page is read in order and stops at its limit
        # instead of sorting every run that matches. The job's also holds the status, which a
        # job's success rate reads; PostgreSQL then answers from the index alone.
        Index("ix_job_executions_job_runs", "job_id", "scheduled_at", "id", "status"),
        Index("ix_job_executions_scheduled", "scheduled_at", "id"),
        Index("ix_job_executions_status_scheduled", "status", "scheduled_at", "id"),
        # A day's runs per queue and status: one count of one index range for each pair.
        Index("ix_job_executions_queue_status", "queue", "status", "scheduled_at"),
        # A worker's start counts the job's runs going (max_instances) among these only.
        Index(
            "ix_job_executions_running",
            "job_id",
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
        # A scheduled time is claimed once: a second claim of it conflicts and is skipped.
        Index(
            "uq_job_executions_fire",
            "job_id",
            "scheduled_at",
            unique=True,
            sqlite_where=text("trigger_kind = 'schedule' AND epoch IS NOT NULL"),
            postgresql_where=text("trigger_kind = 'schedule' AND epoch IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(191))
    queue: Mapped[str] = mapped_column(String(16))
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    status: Mapped[ExecutionStatus] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    trigger_kind: Mapped[TriggerKind] = mapped_column(String(16))
    error_type: Mapped[str | None] = mapped_column(String(255))
    error_message: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    instance_id: Mapped[str] = mapped_column(String(64))
    # The JSON arguments a manual run was given, and the run a manual retry repeats.
    input: Mapped[str | None] = mapped_column(Text)
    retry_of: Mapped[str | None] = mapped_column(String(32))
    # The leader epoch that claimed this run; None for history older than claims, and for a
    # manual run or a retry until it is claimed.
    epoch: Mapped[int | None] = mapped_column(Integer)
    # With worker processes: the Procrastinate job that carries the run (set in the claim's
    # transaction), and the worker that ran it. None for runs in the scheduler process.
    task_id: Mapped[int | None] = mapped_column(BigInteger)
    worker_id: Mapped[str | None] = mapped_column(String(64))


class SchedulerCommand(Base):
    """A change asked of the scheduler by another process; the scheduler applies and answers.

    Only what needs the live process goes this way: run now, retry, cancel. Job changes are
    row updates in `jobs`.
    """

    __tablename__ = "scheduler_commands"
    __table_args__ = (Index("ix_scheduler_commands_status_created", "status", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(191))
    execution_id: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[CommandStatus] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """A change made to a job or a run: when, by whom, what, the state before and after.

    Written in the transaction that makes the change, so no change goes unrecorded. The
    outcome starts `pending`; the scheduler sets it when it applies the change's `revision` or
    answers its command (`command_id`), whenever that is.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_job_at", "job_id", "at"),
        # The scheduler settles the few pending entries.
        Index("ix_audit_log_outcome", "outcome"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_kind: Mapped[ActorKind] = mapped_column(String(16))
    # Which token, session or user; never the secret itself.
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[AuditAction] = mapped_column(String(16))
    job_id: Mapped[str | None] = mapped_column(String(191))
    execution_id: Mapped[str | None] = mapped_column(String(32))
    # JSON: the job's stored state (or the run's) before and after; null where there was none.
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[CommandStatus] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    # The job revision a change raised, or the command that carries it.
    revision: Mapped[int | None] = mapped_column(Integer)
    command_id: Mapped[str | None] = mapped_column(String(32))
