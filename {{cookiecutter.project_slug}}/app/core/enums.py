"""The fixed vocabularies every process shares: run statuses, scheduler states, queue labels.

Plain enums with no imports of their own, so the CLI can offer them as choices without
loading the database layer.
"""

from __future__ import annotations

from enum import StrEnum


class SchedulerState(StrEnum):
    """What a scheduler process is doing, as its heartbeat says."""

    STANDBY = "standby"  # waiting for another instance to give up the leader lock
    RUNNING = "running"  # holds the lock and runs jobs
    STOPPED = "stopped"  # shut down cleanly


class WorkerState(StrEnum):
    """What a worker process is doing, as its heartbeat says."""

    RUNNING = "running"  # serving its queues
    RECONNECTING = "reconnecting"  # lost the database; serves its queues again once it answers
    STOPPING = "stopping"  # asked to stop: takes nothing new, lets its runs end
    STOPPED = "stopped"  # shut down cleanly


class ExecutionStatus(StrEnum):
    """Where a run stands; every state but `pending` and `running` is final."""

    PENDING = "pending"  # asked for (run now, a retry) and waiting for its time
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    # Never started: no scheduler could run it in time, or its catch-up policy passed it over.
    MISSED = "missed"
    SKIPPED = "skipped"  # the previous run of the same job was still going
    INTERRUPTED = "interrupted"  # the scheduler stopped or died during the run
    CANCELLED = "cancelled"  # stopped on request (the API or the CLI)

    @property
    def is_final(self) -> bool:
        """The run has ended: nothing will change this status again."""
        return self not in UNFINISHED

    @property
    def is_retryable(self) -> bool:
        """Ended without success: a manual retry may run it again."""
        return self.is_final and self is not ExecutionStatus.SUCCEEDED

    @property
    def counts_in_success_rate(self) -> bool:
        """A run that started and ended; runs that never started do not say how a job fares."""
        return self in _RAN_TO_AN_END

    @property
    def phrase(self) -> str:
        """The status as words after a subject: "execution 42 succeeded", "... is running"."""
        return _PHRASES[self]


UNFINISHED = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)
# The ends of runs that started and did not succeed: what a retry policy answers, and what the
# dashboard lists as failures.
FAILED_ENDS = (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT)
_RAN_TO_AN_END = frozenset(
    {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.TIMED_OUT,
        ExecutionStatus.INTERRUPTED,
    }
)
_PHRASES = {
    ExecutionStatus.PENDING: "is pending",
    ExecutionStatus.RUNNING: "is running",
    ExecutionStatus.SUCCEEDED: "succeeded",
    ExecutionStatus.FAILED: "failed",
    ExecutionStatus.TIMED_OUT: "timed out",
    ExecutionStatus.MISSED: "was missed",
    ExecutionStatus.SKIPPED: "was skipped",
    ExecutionStatus.INTERRUPTED: "was interrupted",
    ExecutionStatus.CANCELLED: "was cancelled",
}
RATE_STATUSES = tuple(status for status in ExecutionStatus if status.counts_in_success_rate)


class TriggerKind(StrEnum):
    """Why a run happened."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"


class CommandStatus(StrEnum):
    """Where a command to the scheduler stands."""

    PENDING = "pending"  # written, not yet read by a running scheduler
    APPLIED = "applied"
    REJECTED = "rejected"  # the scheduler could not apply it; `detail` says why


class JobOrigin(StrEnum):
    """Where a job is defined."""

    CODE = "code"  # app/components/scheduler/jobs.py
    RUNTIME = "runtime"  # added through the API or the CLI


class ActorKind(StrEnum):
    """Who made a change, as the audit log records it."""

    API_TOKEN = "api_token"  # the management API, with the operator token
    CLI = "cli"  # the CLI on the database (with --url the API records the change)
    DASHBOARD = "dashboard"  # a dashboard session, signed in with the operator token


class AuditAction(StrEnum):
    """The changes the audit log records: every change to a job or a run."""

    PAUSE = "pause"
    RESUME = "resume"
    RESCHEDULE = "reschedule"
    ADD = "add"
    DELETE = "delete"
    RUN = "run"
    RETRY = "retry"
    CANCEL = "cancel"


class CatchUp(StrEnum):
    """What a job does with scheduled times that passed while no scheduler could run them.

    After downtime, a failover or a database outage several of a job's times may be due at
    once. Each one gets a row: a run, or `missed` with the reason.
    """

    LATEST = "latest"  # run the latest once; the earlier ones are missed
    ALL = "all"  # run each one, oldest first, that is still within the misfire grace time
    NONE = "none"  # run none of them: all are missed; the schedule goes on from now


class MissReason(StrEnum):
    """Why a scheduled time did not run: the `reason` of `scheduler_fires_missed`.

    The history row keeps the whole sentence; this is its fixed-vocabulary kind.
    """

    MISFIRE_GRACE_TIME = "misfire_grace_time"  # later than the job's misfire grace time
    CATCH_UP_LATEST = "catch_up_latest"  # a later time of the same job ran instead
    CATCH_UP_NONE = "catch_up_none"  # passed during downtime, and the job runs none of those
    LOST_LEADERSHIP = "lost_leadership"  # claimed by a leader that lost its lease before it
    # More times were due at once than get rows (a long outage): counted, not listed.
    UNLISTED = "unlisted"


class Queue(StrEnum):
    """A priority label, stored with every execution and shown by the API and the CLI."""

    CRITICAL = "critical"
    DEFAULT = "default"
    LOW = "low"


class JobState(StrEnum):
    """Where a job stands in the scheduler."""

    SCHEDULED = "scheduled"
    PAUSED = "paused"
    # Nothing due: a code job no scheduler has stored yet, or a one-time job that has run.
    UNSCHEDULED = "unscheduled"
    INVALID = "invalid"  # a runtime job whose definition no longer loads (see `problem`)
