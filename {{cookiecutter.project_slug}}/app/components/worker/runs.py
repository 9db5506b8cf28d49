"""A worker's side of a run: start it under the job's limits, run it, record its end.

The run's row was claimed and queued by the leader; the worker starts it by moving it from
`pending` to `running`, with its own id, with the job's row locked, so two workers starting
runs of one job at once still respect `max_instances`. Starts and ends are written in
batches (`records`); the end of a run that earns a retry is written with the retry's row and
its queue job, in one transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert

from app.components.scheduler import metrics
from app.components.scheduler.alerts import FailureAlerts
from app.components.scheduler.catalog import Definitions, JobRecord
from app.components.scheduler.claims import SKIP_REASON
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.dispatch import Deferral
from app.components.scheduler.history import execution_row, queue_runs
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
from app.components.worker.records import End, RunRecords, end_call
from app.core.db import write_transaction
from app.core.enums import ExecutionStatus, TriggerKind
from app.core.models import JobExecution
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
        records: RunRecords,
        code: Sequence[ScheduledJob],
        alerts: FailureAlerts,
    ) -> None:
        self.engine = engine
        self.records = records
        self.worker_id = records.worker_id
        self.alerts = alerts
        self.definitions = Definitions(code)
        self.queue = WorkerQueue()
        # Runs in progress, by execution id; and how many of each queue.
        self.running: dict[str, RunningRun] = {}
        self.load: Counter[str] = Counter()

    async def run(self, execution_id: str, cancelled: Callable[[], bool]) -> None:
        """Start, run and record one run; a run that may not start is recorded as such.

        `cancelled` says whether a stop of the run's task was asked for on the run's behalf
        (a cancel), rather than by the worker's own shutdown.
        """
        started = await self.start(execution_id)
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
        queue = definition.queue.value
        run = self.running[execution_id] = RunningRun(definition.id, asyncio.current_task())
        self.load[queue] += 1
        try:
            outcome = await perform(definition, run, started.arguments, process="worker")
        finally:
            self.running.pop(execution_id, None)
            self.load[queue] -= 1
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
        streak = await asyncio.shield(self.finish(started, outcome, retry_at))
        if streak is None:
            # Recorded as interrupted meanwhile (this worker looked dead): that end stands.
            logger.warning(
                "run end not recorded: the run was already ended as interrupted",
                extra=context,
            )
        else:
            metrics.run_ended(definition.id, outcome.status)
            metrics.run_finished(definition.id, queue, outcome.duration_ms / 1000)
            if retry_at is not None:
                metrics.retry_planned(definition.id)
        failure = log_outcome(outcome, context, retry_at)
        if failure is not None and streak:
            await self.alerts.failed(definition.id, streak, execution_id, failure)
        if outcome.stopped:
            raise asyncio.CancelledError

    async def start(self, execution_id: str) -> Started | None:
        """Move the run to `running` under this worker; None if it does not run here.

        A run cancelled or ended meanwhile is left as it is; a run whose job is gone, or whose
        job runs as many times as it may, ends at once with why; one whose definition no
        longer loads here fails with why.
        """
        row = await self.records.start(execution_id)
        if row.outcome == "gone":
            await self._end_waiting(row.id, execution_id, ExecutionStatus.CANCELLED, _GONE)
            return None
        if row.outcome == "busy":
            await self._end_waiting(row.id, execution_id, ExecutionStatus.SKIPPED, SKIP_REASON)
            return None
        if row.outcome != "started":
            _log_not_waiting(execution_id)
            return None
        try:
            definition = self.definitions.of(_as_record(row))
        except ScheduleError as error:
            reason = f"cannot run on this worker: {error} (is the worker's code current?)"
            logger.error(reason, extra={"job_id": row.id, "execution_id": execution_id})
            failed = End(
                execution_id,
                row.id,
                ExecutionStatus.RUNNING,
                ExecutionStatus.FAILED,
                reason=reason,
            )
            if await self.records.end(failed) is not None:
                metrics.run_ended(row.id, ExecutionStatus.FAILED)
            return None
        if row.trigger_kind == TriggerKind.SCHEDULE.value:
            metrics.fire_started(definition.queue.value, row.scheduled_at, row.started_at)
        return Started(
            execution_id,
            definition,
            row.attempt,
            TriggerKind(row.trigger_kind),
            json.loads(row.input) if row.input else None,
        )

    async def finish(
        self, started: Started, outcome: Outcome, retry_at: datetime | None
    ) -> int | None:
        """Record the run's end, and the retry it earns; the job's failure streak after it
        (0 after a success), None when the end was not this worker's to record."""
        end = End(
            started.execution_id,
            started.definition.id,
            ExecutionStatus.RUNNING,
            outcome.status,
            outcome.duration_ms,
            outcome.error,
            outcome.trace,
        )
        if retry_at is None:
            return await self.records.end(end)
        return await asyncio.to_thread(self.finish_with_retry, started, end, retry_at)

    def finish_with_retry(self, started: Started, end: End, retry_at: datetime) -> int | None:
        """The end, the retry's row and its queue job, in one transaction."""
        with write_transaction(self.engine) as connection:
            statement, parameters = end_call([end], self.worker_id)
            streak: int | None = connection.exec_driver_sql(statement, parameters).one().streak
            if streak is not None:
                self._queue_retry(connection, started, retry_at)
        return streak

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

    async def _end_waiting(
        self, job_id: str, execution_id: str, status: ExecutionStatus, reason: str
    ) -> None:
        """End a run that may not start here, if it still waits; log which it was."""
        ended = await self.records.end(
            End(execution_id, job_id, ExecutionStatus.PENDING, status, reason=reason)
        )
        if ended is None:
            _log_not_waiting(execution_id)
            return
        metrics.run_ended(job_id, status)
        if status is ExecutionStatus.SKIPPED:
            metrics.fire_skipped(job_id)
            logger.warning(
                "job run skipped: previous run still going",
                extra={"job_id": job_id, "execution_id": execution_id},
            )


_GONE = "the job was deleted before a worker started the run"


def _log_not_waiting(execution_id: str) -> None:
    logger.info(
        "queued run not started: it was cancelled or has ended",
        extra={"execution_id": execution_id},
    )


def _as_record(row: Any) -> JobRecord:
    record: JobRecord = row
    return record
