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


class ExecutionStatus(StrEnum):
    """Where a run stands; every state but `pending` and `running` is final."""

    PENDING = "pending"  # asked for (run now, a retry) and waiting for its time
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    MISSED = "missed"  # its time passed beyond the misfire grace time while nothing ran it
    SKIPPED = "skipped"  # the previous run of the same job was still going
    INTERRUPTED = "interrupted"  # the scheduler stopped or died during the run
    CANCELLED = "cancelled"  # stopped on request (the API or the CLI)

    @property
    def is_final(self) -> bool:
        """The run has ended: nothing will change this status again."""
        return self not in UNFINISHED


UNFINISHED = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING)


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


class Queue(StrEnum):
    """A priority label, stored with every execution and shown by the API and the CLI."""

    CRITICAL = "critical"
    DEFAULT = "default"
    LOW = "low"


class JobState(StrEnum):
    """Where a job stands in the scheduler."""

    SCHEDULED = "scheduled"
    PAUSED = "paused"
    # Not in the job store: no scheduler has started since it was defined, or its one run
    # is in the past.
    UNSCHEDULED = "unscheduled"
    INVALID = "invalid"  # a runtime job whose definition no longer loads (see `problem`)
