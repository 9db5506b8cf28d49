"""What the CLI asks of the service: one set of calls, answered locally or over HTTP.

`Management` answers from the database; `RemoteManagement` from a running API. Both implement
`JobManager`, so a command is written once and works against either (`--url` picks).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from app.components.management.schemas import (
    AddJobRequest,
    AuditPage,
    CommandResult,
    ExecutionDetail,
    ExecutionPage,
    JobDetail,
    JobPage,
    SchedulerStatus,
)
from app.core.enums import AuditAction, ExecutionStatus, JobState, Queue
from app.core.schedule_specs import Spec


class JobManager(Protocol):
    """Jobs, their runs and the scheduler: read, changed, run and cancelled."""

    def list_jobs(
        self,
        state: JobState | None = None,
        queue: Queue | None = None,
        limit: int = 50,
        offset: int = 0,
        search: str | None = None,
    ) -> JobPage:
        """Jobs, soonest next run first, filtered by state, queue and a search of ids and
        names."""

    def job(self, job_id: str) -> JobDetail:
        """One job with its recent runs."""

    def executions(
        self,
        job_id: str | None = None,
        status: ExecutionStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> ExecutionPage:
        """Runs, newest first."""

    def execution(self, execution_id: str) -> ExecutionDetail:
        """One run with its traceback."""

    def audit(
        self,
        job_id: str | None = None,
        action: AuditAction | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> AuditPage:
        """The audit log, newest first."""

    def status(self) -> SchedulerStatus:
        """The instances, who leads, job counts and runs per queue."""

    def pause(self, job_id: str) -> CommandResult:
        """Stop a job's schedule until it is resumed."""

    def resume(self, job_id: str) -> CommandResult:
        """Restart a paused job's schedule."""

    def reschedule(self, job_id: str, spec: Spec) -> CommandResult:
        """Give a job another schedule."""

    def run(self, job_id: str, arguments: dict[str, Any]) -> CommandResult:
        """Run a job now, outside its schedule."""

    def add(self, request: AddJobRequest) -> CommandResult:
        """Add a job at runtime."""

    def delete(self, job_id: str) -> CommandResult:
        """Delete a runtime job."""

    def retry(self, execution_id: str) -> CommandResult:
        """Run a finished run again."""

    def cancel(self, execution_id: str) -> CommandResult:
        """Stop a run, or a run not started yet."""
