"""The project's own tables (APScheduler keeps its job store in a table of its own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime
from app.core.enums import CommandStatus, ExecutionStatus, SchedulerState, TriggerKind


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


class JobExecution(Base):
    """One row per run of a job, written by the scheduler, read by the API and the CLI."""

    __tablename__ = "job_executions"
    __table_args__ = (Index("ix_job_executions_job_scheduled", "job_id", "scheduled_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(191))
    queue: Mapped[str] = mapped_column(String(16))
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    status: Mapped[ExecutionStatus] = mapped_column(String(16), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    trigger_kind: Mapped[TriggerKind] = mapped_column(String(16))
    error_type: Mapped[str | None] = mapped_column(String(255))
    error_message: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    instance_id: Mapped[str] = mapped_column(String(64))
    # The JSON arguments a manual run was given, and the run a manual retry repeats.
    input: Mapped[str | None] = mapped_column(Text)
    retry_of: Mapped[str | None] = mapped_column(String(32))


class SchedulerCommand(Base):
    """A change asked of the scheduler by another process; the scheduler applies and answers.

    This table is the one way the API and the CLI act on the running scheduler: APScheduler 3
    never rereads its store, so a change written there by another process would go unseen.
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


class RuntimeJob(Base):
    """A job added through the API or the CLI: a registered function, its arguments, a schedule."""

    __tablename__ = "runtime_jobs"

    id: Mapped[str] = mapped_column(String(191), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    function: Mapped[str] = mapped_column(String(191))
    args: Mapped[str] = mapped_column(Text, default="{}")
    schedule: Mapped[str] = mapped_column(Text)
    queue: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScheduleOverride(Base):
    """A code-defined job's schedule as changed through the API or the CLI.

    It lasts while the schedule in code stays what it was when the override was made
    (`code_trigger`); a new schedule in code wins, and the override is dropped.
    """

    __tablename__ = "schedule_overrides"

    job_id: Mapped[str] = mapped_column(String(191), primary_key=True)
    schedule: Mapped[str] = mapped_column(Text)
    code_trigger: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
