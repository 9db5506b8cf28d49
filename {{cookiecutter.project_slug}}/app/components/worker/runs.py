"""A worker's side of a run: start it under the job's limits, run it, record its end.

The run's row was claimed and queued by the leader; the worker starts it by moving it from
`pending` to `running`, with its own id, in a transaction that locks the job's row, so two
workers starting runs of one job at once still respect `max_instances`. The end, the job's
failure streak and the retry a failure earns are one transaction: the retry's row and its
queue job together.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from app.components.scheduler.alerts import FailureAlerts
from app.components.scheduler.catalog import Definitions, JobRecord
from app.components.scheduler.claims import SKIP_REASON
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.dispatch import Deferral
from app.components.scheduler.history import end_fields, execution_row, queue_runs
from app.components.scheduler.perform import (
    JobCancelled,
    Outcome,
    RunningRun,
    log_outcome,
    perform,
    retry_time,
    stop_thread,
)
from app.components.worker.queue import WorkerQueue
from app.core.db import utcnow, write_transaction
from app.core.enums import ExecutionStatus, TriggerKind
from app.core.models import Job, JobExecution
from app.core.schedules import ScheduleError

logger = logging.getLogger("app.worker")


@dataclass(frozen=True)
class Started:
    """A run this worker has started: what it runs, and with which arguments."""

    execution_id: str
    definition: ScheduledJob
    attempt: int
    trigger_kind: TriggerKind
    arguments: dict[str, Any] | None


class WorkerRuns:
    """Runs the runs the queue hands this worker process."""

    def __init__(
        self,
        engine: Engine,
        worker_id: str,
        code: Sequence[ScheduledJob],
        alerts: FailureAlerts,
    ) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.alerts = alerts
        self.definitions = Definitions(code)
        self.queue = WorkerQueue()
        # Runs in progress, by execution id.
        self.running: dict[str, RunningRun] = {}

    async def run(self, execution_id: str, cancelled: Callable[[], bool]) -> None:
        """Start, run and record one run; a run that may not start is recorded as such.

        `cancelled` says whether a stop of the run's task was asked for on the run's behalf
        (a cancel), rather than by the worker's own shutdown.
        """
        started = await asyncio.to_thread(self.start, execution_id)
        if started is None:
            return
        definition = started.definition
        context = {
            "job_id": definition.id,
            "execution_id": execution_id,
            "attempt": started.attempt,
            "worker_id": self.worker_id,
        }
        logger.info("job started", extra={**context, "trigger": started.trigger_kind.value})
        run = self.running[execution_id] = RunningRun(definition.id, asyncio.current_task())
        try:
            outcome = await perform(definition, run, started.arguments, process="worker")
        finally:
            self.running.pop(execution_id, None)
        if outcome.stopped and cancelled():
            # A blocking function goes on in its thread: stopped there too, as in a scheduler.
            stop_thread(run)
            outcome = replace(
                outcome,
                status=ExecutionStatus.CANCELLED,
                error=JobCancelled("cancelled on request"),
                stopped=False,
            )
        retry_at = retry_time(definition, outcome.status, started.attempt)
        # Recorded even when the run was cut short by a stop: that is when it matters most.
        streak = await asyncio.shield(asyncio.to_thread(self.finish, started, outcome, retry_at))
        failure = log_outcome(outcome, context, retry_at)
        if failure is not None and streak:
            await self.alerts.failed(definition.id, streak, execution_id, failure)
        if outcome.stopped:
            raise asyncio.CancelledError

    def start(self, execution_id: str) -> Started | None:
        """Move the run to `running` under this worker; None if it does not run here.

        A run cancelled or ended meanwhile is left as it is; a run whose job is gone, whose
        definition no longer loads, or whose job runs as many times as it may, ends at once
        with why.
        """
        with write_transaction(self.engine) as connection:
            # The job's row first, then the run's, as a job's deletion takes them: locked
            # until this transaction ends, so starts of one job's runs take turns.
            job = connection.execute(
                select(*Job.__table__.columns)
                .where(
                    Job.id
                    == select(JobExecution.job_id)
                    .where(JobExecution.id == execution_id)
                    .scalar_subquery()
                )
                .with_for_update()
            ).one_or_none()
            if job is None:
                self._end(connection, execution_id, ExecutionStatus.CANCELLED, reason=_GONE)
                return None
            try:
                definition = self.definitions.of(_as_record(job))
            except ScheduleError as error:
                reason = f"cannot run on this worker: {error} (is the worker's code current?)"
                logger.error(reason, extra={"job_id": job.id, "execution_id": execution_id})
                self._end(connection, execution_id, ExecutionStatus.FAILED, reason=reason)
                return None
            # One statement, its snapshot taken with the job's row locked: the runs going
            # now are counted as the other starts of the job committed them.
            going = (
                select(func.count())
                .where(
                    JobExecution.job_id == job.id,
                    JobExecution.status == ExecutionStatus.RUNNING,
                )
                .scalar_subquery()
            )
            row = connection.execute(
                update(JobExecution)
                .where(
                    JobExecution.id == execution_id,
                    JobExecution.status == ExecutionStatus.PENDING,
                    going < definition.max_instances,
                )
                .values(
                    status=ExecutionStatus.RUNNING, started_at=utcnow(), worker_id=self.worker_id
                )
                .returning(JobExecution.attempt, JobExecution.trigger_kind, JobExecution.input)
            ).one_or_none()
            if row is None:
                # Not pending any more (cancelled, or ended meanwhile), or over the limit.
                self._end(connection, execution_id, ExecutionStatus.SKIPPED, reason=SKIP_REASON)
                return None
        return Started(
            execution_id,
            definition,
            row.attempt,
            TriggerKind(row.trigger_kind),
            json.loads(row.input) if row.input else None,
        )

    def finish(self, started: Started, outcome: Outcome, retry_at: datetime | None) -> int:
        """Record the run's end, the job's failure streak and the retry the run earns, in one
        transaction; returns the streak (0 after a success, or when the end was not this
        worker's to record)."""
        definition = started.definition
        with write_transaction(self.engine) as connection:
            recorded = connection.execute(
                update(JobExecution)
                .where(
                    JobExecution.id == started.execution_id,
                    JobExecution.status == ExecutionStatus.RUNNING,
                )
                .values(
                    **end_fields(outcome.status, outcome.duration_ms, outcome.error, outcome.trace)
                )
            )
            if recorded.rowcount == 0:
                # Recorded as interrupted meanwhile (this worker looked dead): that end stands.
                logger.warning(
                    "run end not recorded: the run was already ended as interrupted",
                    extra={"execution_id": started.execution_id, "job_id": definition.id},
                )
                return 0
            streak = self._count_streak(connection, definition.id, outcome.status)
            if retry_at is not None:
                self._queue_retry(connection, started, retry_at)
        return streak

    @staticmethod
    def _count_streak(connection: Connection, job_id: str, status: ExecutionStatus) -> int:
        """Raise the job's failure streak after a failure, end it after a success.

        The update locks the job's row, so two workers ending runs of one job count in turn.
        """
        if status is ExecutionStatus.SUCCEEDED:
            connection.execute(
                update(Job)
                .where(Job.id == job_id, Job.consecutive_failures != 0)
                .values(consecutive_failures=0)
            )
            return 0
        if status not in (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT):
            return 0
        streak = connection.scalar(
            update(Job)
            .where(Job.id == job_id)
            .values(consecutive_failures=Job.consecutive_failures + 1)
            .returning(Job.consecutive_failures)
        )
        return streak or 0

    def _queue_retry(self, connection: Connection, started: Started, retry_at: datetime) -> None:
        """The retry's row, and its queue job at the retry's time."""
        definition = started.definition
        retry = execution_row(
            definition.id,
            definition.queue.value,
            retry_at,
            ExecutionStatus.PENDING,
            attempt=started.attempt + 1,
            trigger_kind=TriggerKind.RETRY,
            arguments=started.arguments,
        )
        connection.execute(insert(JobExecution), [retry])
        queue_runs(
            connection,
            self.queue,
            [Deferral(retry["id"], definition.queue.value, retry_at)],
        )

    def _end(
        self,
        connection: Connection,
        execution_id: str,
        status: ExecutionStatus,
        *,
        reason: str,
    ) -> None:
        """End a run that may not start here, if it still waits; log which it was."""
        ended = connection.execute(
            update(JobExecution)
            .where(
                JobExecution.id == execution_id,
                JobExecution.status == ExecutionStatus.PENDING,
            )
            .values(worker_id=self.worker_id, **end_fields(status, 0.0, reason=reason))
            .returning(JobExecution.job_id)
        ).one_or_none()
        if ended is None:
            logger.info(
                "queued run not started: it was cancelled or has ended",
                extra={"execution_id": execution_id},
            )
        elif status is ExecutionStatus.SKIPPED:
            logger.warning(
                "job run skipped: previous run still going",
                extra={"job_id": ended.job_id, "execution_id": execution_id},
            )


_GONE = "the job was deleted before a worker started the run"


def _as_record(row: Any) -> JobRecord:
    record: JobRecord = row
    return record
