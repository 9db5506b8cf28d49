"""What the management API answers and accepts; the CLI prints the same models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.components.scheduler.definition import HIGHEST_PRIORITY, JOB_ID_PATTERN, LOWEST_PRIORITY
from app.core.enums import (
    ActorKind,
    AuditAction,
    CatchUp,
    CommandStatus,
    ExecutionStatus,
    JobState,
    Queue,
    TriggerKind,
)
from app.core.health import InstanceInfo
from app.core.job_rows import JobInfo
from app.core.schedule_specs import RecurringSpec, ScheduleSpec
from app.core.text import CONTROL_CHARACTERS
from app.core.times import UtcTime
from app.core.workers import WorkersHealth


class LastRun(BaseModel):
    """The latest run of a job that has ended."""

    execution_id: str
    status: ExecutionStatus
    scheduled_at: UtcTime
    finished_at: UtcTime | None
    error_message: str | None


class JobSummary(JobInfo):
    """A job in a listing."""

    origin: Literal["code", "runtime"]
    state: JobState
    queue: Queue
    priority: int = Field(
        description="Within its queue, runs of a job of higher priority are taken first."
    )
    running: int = Field(description="Runs of this job in progress now.")
    version: int | None = Field(
        description="Raised by every change to the job; null until a scheduler stores it."
    )
    last_run: LastRun | None
    success_rate: float | None = Field(
        description="Succeeded share of the last runs that ended (missed, skipped and "
        "cancelled runs not counted); null before the first."
    )
    runs_counted: int


class NextFire(BaseModel):
    """One coming scheduled time of a job."""

    at: UtcTime
    local_time: str = Field(description="The same time on the job's clock, with its offset.")
    dst: str | None = Field(
        description="What a daylight-saving change does to this time, if anything."
    )


class NotRunEvent(BaseModel):
    """Why a job did not run when it was due: a run that did not happen or did not end on its
    own, or a pause or resume of its schedule."""

    at: UtcTime
    what: str = Field(description="The run's status, or `paused` / `resumed` (or refused).")
    reason: str = Field(description="The run's error, or who changed the schedule.")
    execution_id: str | None = None


class JobDetail(JobSummary):
    """One job: its definition, state, next run, last run and success rate."""

    function: str
    inputs: dict[str, str] = Field(description="Arguments a manual run may set, with types.")
    args: dict[str, Any] = Field(description="Fixed arguments of every run (runtime jobs).")
    timezone: str | None
    max_instances: int
    retry_attempts: int = Field(
        description="Runs in all for one scheduled time, the first included: 1 means no retries."
    )
    timeout_seconds: float | None
    catch_up: CatchUp | None = Field(
        description="What happens to scheduled times that passed while no scheduler ran."
    )
    schedule_overridden: bool = Field(description="The schedule was changed through the API.")
    problem: str | None = None
    pending_commands: int
    next_fires: list[NextFire] = Field(
        description="The next scheduled times in the job's zone (none while paused)."
    )


class PageInfo(BaseModel):
    """Where a page sits in the whole listing."""

    total: int
    limit: int
    offset: int


class JobPage(PageInfo):
    """A page of jobs, soonest next run first."""

    items: list[JobSummary]


class ExecutionInfo(BaseModel):
    """One run of a job."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    job_id: str
    queue: str
    status: ExecutionStatus
    trigger_kind: TriggerKind
    attempt: int
    scheduled_at: UtcTime
    started_at: UtcTime | None
    finished_at: UtcTime | None
    duration_ms: float | None
    error_type: str | None
    error_message: str | None
    instance_id: str
    worker_id: str | None = Field(
        None, description="The worker process that ran it; null for a run in the scheduler."
    )
    input: dict[str, Any] | None
    retry_of: str | None


class ExecutionDetail(ExecutionInfo):
    """One run with its traceback."""

    traceback: str | None


class ExecutionPage(PageInfo):
    """A page of runs, newest first."""

    items: list[ExecutionInfo]


class ExecutionFeed(BaseModel):
    """A page of runs, newest first, read from where the page before ended.

    Unlike `ExecutionPage` it has no total: counting a million rows for every page is what
    makes a large history slow to browse.
    """

    items: list[ExecutionInfo]
    limit: int
    next: str | None = Field(
        description="Pass as `before` for the next, older page; null on the last page."
    )


class AuditEntryInfo(BaseModel):
    """One change to a job or a run, who made it, and what became of it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    at: UtcTime
    actor_kind: ActorKind = Field(
        description="api_token: the API with the operator token; cli: the CLI on the "
        "database; dashboard: a dashboard session signed in with the operator token."
    )
    actor: str = Field(description="Which token, or which user on which host.")
    action: AuditAction
    job_id: str | None
    execution_id: str | None
    before: dict[str, Any] | None = Field(
        description="The job's stored state (or the run's) before the change; null if none."
    )
    after: dict[str, Any] | None = Field(description="The same after the change.")
    outcome: CommandStatus = Field(
        description="pending until the scheduler applies the change or answers its command: "
        "then applied, or rejected (see detail)."
    )
    detail: str | None


class AuditPage(PageInfo):
    """A page of the audit log, newest first."""

    items: list[AuditEntryInfo]


class CommandResult(BaseModel):
    """What became of a change: applied, stored for when a scheduler runs, or rejected."""

    status: CommandStatus = Field(
        description="applied: the running scheduler acts on it; pending: stored, and no "
        "running scheduler has confirmed it yet; rejected: the scheduler refused (see detail)."
    )
    detail: str
    job_id: str | None = None
    execution_id: str | None = None
    command_id: str | None = Field(
        None, description="Run, retry and cancel: the command the scheduler answered."
    )
    revision: int | None = Field(None, description="Job changes: the job revision the change made.")
    job: JobDetail | None = Field(None, description="The job as it is after the change.")


class QueueCounts(BaseModel):
    """Executions of one queue label, by status, since `counts_since`."""

    queue: str
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = Field(0, description="Failed or timed out.")


class JobCounts(BaseModel):
    """Jobs by state."""

    total: int
    scheduled: int
    paused: int
    unscheduled: int
    invalid: int


class SchedulerStatus(BaseModel):
    """The scheduler instances, the jobs, and the executions per queue."""

    healthy: bool
    detail: str
    instances: list[InstanceInfo]
    leader: str | None = Field(description="The instance holding the current lease, if any.")
    epoch: int | None = Field(description="The current lease's epoch, raised by each new leader.")
    lease_expires_at: UtcTime | None = Field(
        description="When the lease ends unless its holder renews it (the database's clock)."
    )
    jobs: JobCounts
    queues: list[QueueCounts]
    workers: WorkersHealth | None = Field(
        None,
        description="With worker processes: the workers, each queue's load, and whether every "
        "queue has one.",
    )
    counts_since: UtcTime
    pending_commands: int
    job_revision: int = Field(description="Raised by every change to a job.")
    applied_revision: int = Field(
        description="The newest job revision a scheduler has applied; below `job_revision`, "
        "changes wait for a scheduler."
    )


class RunRequest(BaseModel):
    """Run a job now, outside its schedule."""

    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any] = Field(
        default_factory=dict, description="Arguments for this run; see the job's `inputs`."
    )


class RescheduleRequest(BaseModel):
    """A new cron or interval schedule for a job."""

    model_config = ConfigDict(extra="forbid")

    schedule: RecurringSpec


class AddJobRequest(BaseModel):
    """A job added at runtime: a registered function by name, its arguments and a schedule."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        pattern=f"^{JOB_ID_PATTERN.pattern}$", max_length=100, examples=["nightly_report"]
    )
    name: str = Field(
        min_length=1,
        max_length=200,
        # One line of printable text: a name is shown in tables and log lines.
        pattern=f"^[^{CONTROL_CHARACTERS}]+$",
    )
    function: str = Field(
        max_length=191,
        description="A registered job function; GET /api/functions lists them.",
    )
    args: dict[str, Any] = Field(default_factory=dict)
    schedule: ScheduleSpec
    queue: Queue = Queue.DEFAULT
    priority: int = Field(
        0,
        ge=LOWEST_PRIORITY,
        le=HIGHEST_PRIORITY,
        description="Within its queue, runs of a job of higher priority are taken first.",
    )


class FunctionInfo(BaseModel):
    """A function runtime jobs may call, and the arguments it accepts."""

    name: str
    inputs: dict[str, str]
