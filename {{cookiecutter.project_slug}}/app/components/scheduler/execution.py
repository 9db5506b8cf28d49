"""Runs a job the way every run is handled: history, timeout, retries, logs and alerts.

APScheduler stores each job as a call to `execute(job_id)`; `execute` looks the definition up
in the job list, so the code decides what runs, and no function path is ever read from data.
APScheduler has no "started" event and no duration, which is why the call is wrapped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine, update

from app.components.scheduler.alerts import FailureStreaks
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.history import HistoryRecorder
from app.core.db import utcnow
from app.core.errors import JobError
from app.core.models import ExecutionStatus, JobExecution, TriggerKind

logger = logging.getLogger("app.scheduler.jobs")

RETRY_MARK = "@retry-"


def base_job_id(store_id: str) -> str:
    """The job a stored APScheduler job belongs to (retries carry a suffix)."""
    return store_id.split(RETRY_MARK, 1)[0]


@dataclass
class JobRuntime:
    """What `execute` needs from the scheduler process it runs in."""

    scheduler: AsyncIOScheduler
    definitions: Mapping[str, ScheduledJob]
    recorder: HistoryRecorder
    streaks: FailureStreaks
    scheduled_times: defaultdict[str, deque[datetime]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    running: dict[str, str] = field(default_factory=dict)

    def listen(self) -> None:
        """Record what APScheduler decides without running anything: missed and skipped runs."""
        self.scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        self.scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.add_listener(self._missed, EVENT_JOB_MISSED)

    def _submitted(self, event: JobSubmissionEvent) -> None:
        # The run's task starts on the loop's next turn; it picks its scheduled time up here.
        self.scheduled_times[event.job_id].append(event.scheduled_run_times[-1])

    def _skipped(self, event: JobSubmissionEvent) -> None:
        job_id = base_job_id(event.job_id)
        for scheduled_at in event.scheduled_run_times:
            execution_id = self.recorder.outcome_without_run(
                job_id,
                self._queue(job_id),
                scheduled_at,
                ExecutionStatus.SKIPPED,
                "the previous run was still going (max_instances reached)",
            )
            logger.warning(
                "job run skipped: previous run still going",
                extra={"job_id": job_id, "execution_id": execution_id},
            )

    def _missed(self, event: JobExecutionEvent) -> None:
        job_id = base_job_id(event.job_id)
        execution_id = self.recorder.outcome_without_run(
            job_id,
            self._queue(job_id),
            event.scheduled_run_time,
            ExecutionStatus.MISSED,
            "started later than the misfire grace time allows",
        )
        logger.warning(
            "job run missed",
            extra={
                "job_id": job_id,
                "execution_id": execution_id,
                "scheduled_at": event.scheduled_run_time.isoformat(),
            },
        )

    def _queue(self, job_id: str) -> str:
        definition = self.definitions.get(job_id)
        return definition.queue.value if definition else "default"

    def scheduled_time(self, store_id: str) -> datetime:
        times = self.scheduled_times.get(store_id)
        return times.popleft() if times else utcnow()

    def interrupt_running(self, reason: str) -> int:
        """Mark every run still in progress as interrupted; returns how many."""
        for execution_id in list(self.running):
            self.recorder.finished(
                execution_id, ExecutionStatus.INTERRUPTED, 0.0, error=RuntimeError(reason)
            )
        count = len(self.running)
        self.running.clear()
        return count


_runtime: JobRuntime | None = None


def bind(runtime: JobRuntime) -> None:
    """Make `runtime` the one `execute` uses; the scheduler process has exactly one."""
    global _runtime
    _runtime = runtime


def current_runtime() -> JobRuntime:
    """The runtime `execute` uses."""
    if _runtime is None:
        raise RuntimeError("no scheduler runtime: create_scheduler() binds one")
    return _runtime


async def _call(definition: ScheduledJob) -> Any:
    timeout = definition.timeout.total_seconds() if definition.timeout else None
    if inspect.iscoroutinefunction(definition.func):
        return await asyncio.wait_for(definition.func(), timeout)
    # A blocking function runs in a worker thread. A timeout stops waiting for it, but Python
    # cannot stop the thread itself: make such functions check their own deadlines.
    return await asyncio.wait_for(asyncio.to_thread(definition.func), timeout)


def _summary(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


async def execute(
    job_id: str, attempt: int = 1, trigger_kind: str = TriggerKind.SCHEDULE, store_id: str = ""
) -> None:
    """Run job `job_id` once, recording it; failures are recorded and retried, never raised."""
    runtime = current_runtime()
    definition = runtime.definitions.get(job_id)
    if definition is None:
        logger.error("job not defined in code; run dropped", extra={"job_id": job_id})
        return
    scheduled_at = runtime.scheduled_time(store_id or job_id)
    kind = TriggerKind(trigger_kind)
    execution_id = runtime.recorder.started(
        job_id, definition.queue.value, scheduled_at, attempt, kind
    )
    runtime.running[execution_id] = job_id
    context = {"job_id": job_id, "execution_id": execution_id, "attempt": attempt}
    logger.info("job started", extra={**context, "trigger": kind.value})
    began = time.perf_counter()
    try:
        result = await _call(definition)
    except TimeoutError as error:
        failure: BaseException = error
        status, trace = ExecutionStatus.TIMED_OUT, None
        message = f"timed out after {definition.timeout}"
    except asyncio.CancelledError:
        runtime.running.pop(execution_id, None)
        runtime.recorder.finished(
            execution_id,
            ExecutionStatus.INTERRUPTED,
            (time.perf_counter() - began) * 1000,
            error=RuntimeError("cancelled: the scheduler stopped during the run"),
        )
        raise
    except Exception as error:  # noqa: BLE001 - a job's failure is recorded, not propagated
        failure, status = error, ExecutionStatus.FAILED
        # An expected failure (JobError) is explained by its message; anything else is a bug.
        trace = None if isinstance(error, JobError) else traceback.format_exc()
        message = str(error) or type(error).__name__
    else:
        duration_ms = (time.perf_counter() - began) * 1000
        runtime.running.pop(execution_id, None)
        runtime.recorder.finished(execution_id, ExecutionStatus.SUCCEEDED, duration_ms)
        runtime.streaks.succeeded(job_id)
        logger.info(
            "job succeeded",
            extra={**context, "duration_ms": round(duration_ms, 1), "result": _summary(result)},
        )
        return

    duration_ms = (time.perf_counter() - began) * 1000
    runtime.running.pop(execution_id, None)
    if status is ExecutionStatus.TIMED_OUT:
        failure = TimeoutError(message)
    runtime.recorder.finished(execution_id, status, duration_ms, error=failure, traceback=trace)
    retry_at = _schedule_retry(runtime, definition, attempt)
    logger.error(
        f"job {'timed out' if status is ExecutionStatus.TIMED_OUT else 'failed'}: {message}",
        extra={
            **context,
            "duration_ms": round(duration_ms, 1),
            "error": type(failure).__name__,
            "retry_at": retry_at.isoformat() if retry_at else None,
            **({"traceback": trace} if trace else {}),
        },
    )
    await runtime.streaks.failed(job_id, execution_id, message)


def _schedule_retry(runtime: JobRuntime, definition: ScheduledJob, attempt: int) -> datetime | None:
    if attempt >= definition.retry.attempts:
        return None
    delay: timedelta = definition.retry.backoff.delay_before(attempt)
    run_at = utcnow() + delay
    store_id = f"{definition.id}{RETRY_MARK}{attempt + 1}-{int(time.time() * 1000)}"
    # A retry is a one-time job in the persistent store, so it survives a restart.
    runtime.scheduler.add_job(
        execute,
        "date",
        run_date=run_at,
        id=store_id,
        name=f"{definition.name} (retry {attempt + 1})",
        kwargs={
            "job_id": definition.id,
            "attempt": attempt + 1,
            "trigger_kind": TriggerKind.RETRY.value,
            "store_id": store_id,
        },
        misfire_grace_time=None,
    )
    return run_at


def mark_interrupted(engine: Engine) -> int:
    """Mark runs still recorded as running as interrupted; returns how many there were."""
    with engine.begin() as connection:
        result = connection.execute(
            update(JobExecution)
            .where(JobExecution.status == ExecutionStatus.RUNNING)
            .values(
                status=ExecutionStatus.INTERRUPTED,
                finished_at=utcnow(),
                error_type="Interrupted",
                error_message="the scheduler stopped or died during the run",
            )
        )
    return result.rowcount
