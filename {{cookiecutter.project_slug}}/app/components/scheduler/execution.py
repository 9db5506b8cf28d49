"""Runs a job the way every run is handled: history, timeout, retries, logs and alerts.

APScheduler stores each job as a call to `execute(job_id)`; `execute` looks the definition up
in the job list, so the code decides what runs, and no function path is ever read from data.
APScheduler has no "started" event and no duration, which is why the call is wrapped.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import logging
import threading
import time
import traceback
from collections import Counter, defaultdict, deque
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
from sqlalchemy import Engine, select, update

from app.components.scheduler.alerts import FailureStreaks
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.functions import ArgumentError
from app.components.scheduler.history import HistoryRecorder
from app.components.scheduler.store import WriteBehindJobStore
from app.components.scheduler.store_ids import base_job_id, planned_run_id
from app.core.db import utcnow
from app.core.enums import CommandStatus, ExecutionStatus, TriggerKind
from app.core.errors import JobError
from app.core.models import JobExecution, SchedulerCommand
from app.core.settings import Settings

logger = logging.getLogger("app.scheduler.jobs")

SKIP_REASON = "the previous run was still going (max_instances reached)"


class JobCancelled(Exception):
    """Raised inside a job's worker thread when its run is cancelled on request."""


@dataclass
class RunningRun:
    """A run in progress: its job, and what can stop it."""

    job_id: str
    task: asyncio.Task[Any] | None = None
    thread_id: int | None = None
    cancel_requested: bool = False


@dataclass
class JobRuntime:
    """What `execute` needs from the scheduler process it runs in."""

    scheduler: AsyncIOScheduler
    definitions: dict[str, ScheduledJob]
    recorder: HistoryRecorder
    streaks: FailureStreaks
    settings: Settings
    store: WriteBehindJobStore
    scheduled_times: defaultdict[str, deque[datetime]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    running: dict[str, RunningRun] = field(default_factory=dict)
    # Runs in progress per job id, kept beside `running` so the limit check stays O(1).
    active: Counter[str] = field(default_factory=Counter)

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
                SKIP_REASON,
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

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the job store and the history have committed what is queued."""
        return self.store.flush(timeout) and self.recorder.flush(timeout)

    def at_capacity(self, job_id: str) -> bool:
        """Whether `job_id` runs as many times at once as its `max_instances` allows.

        APScheduler counts only the runs of one stored job; a manual run or a retry is a
        stored job of its own, so the limit is enforced here across all of them.
        """
        return self.active[job_id] >= self.definitions[job_id].max_instances

    def begin_run(self, execution_id: str, job_id: str) -> RunningRun:
        """Count a run as in progress."""
        run = self.running[execution_id] = RunningRun(job_id)
        self.active[job_id] += 1
        return run

    def end_run(self, execution_id: str) -> None:
        """Count a run as over."""
        run = self.running.pop(execution_id, None)
        if run is not None:
            self.active[run.job_id] -= 1

    def plan_run(
        self,
        job_id: str,
        execution_id: str,
        run_at: datetime,
        *,
        attempt: int = 1,
        trigger_kind: TriggerKind = TriggerKind.MANUAL,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Put a one-time run of `job_id` in the persistent store, outside its regular schedule.

        The execution row exists already (pending); the run takes it over when it starts.
        """
        definition = self.definitions[job_id]
        store_id = planned_run_id(job_id, execution_id)
        self.scheduler.add_job(
            execute,
            "date",
            run_date=run_at,
            id=store_id,
            name=f"{definition.name} ({trigger_kind.value})",
            kwargs={
                "job_id": job_id,
                "attempt": attempt,
                "trigger_kind": trigger_kind.value,
                "store_id": store_id,
                "execution_id": execution_id,
                "arguments": dict(arguments or {}),
            },
            # A planned run is owed: late is better than never.
            misfire_grace_time=None,
            replace_existing=True,
        )

    def cancel(self, execution_id: str, job_id: str) -> str:
        """Stop a pending or running run; returns what was done. KeyError if neither."""
        run = self.running.get(execution_id)
        if run is None:
            store_id = planned_run_id(job_id, execution_id)
            if self.scheduler.get_job(store_id) is None:
                raise KeyError(execution_id)
            self.scheduler.remove_job(store_id)
            self.recorder.finished(
                execution_id,
                ExecutionStatus.CANCELLED,
                0.0,
                error=JobCancelled("cancelled before it started"),
            )
            return "the planned run was removed before it started"
        run.cancel_requested = True
        if run.thread_id is not None:
            # Python cannot stop a thread from outside; this raises JobCancelled in it the next
            # time it runs Python code (a blocking call in C finishes first).
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(run.thread_id), ctypes.py_object(JobCancelled)
            )
            return "the run was told to stop; it stops at its next Python instruction"
        if run.task is not None:
            run.task.cancel()
        return "the run was cancelled"

    def interrupt_running(self, reason: str) -> int:
        """Mark every run still in progress as interrupted; returns how many."""
        for execution_id in list(self.running):
            self.recorder.finished(
                execution_id, ExecutionStatus.INTERRUPTED, 0.0, error=RuntimeError(reason)
            )
        count = len(self.running)
        self.running.clear()
        self.active.clear()
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


def _in_thread(run: RunningRun, func: Any, arguments: Mapping[str, Any]) -> Any:
    run.thread_id = threading.get_ident()
    try:
        if run.cancel_requested:
            raise JobCancelled
        return func(**arguments)
    finally:
        run.thread_id = None


async def _call(definition: ScheduledJob, run: RunningRun, arguments: Mapping[str, Any]) -> Any:
    timeout = definition.timeout.total_seconds() if definition.timeout else None
    if inspect.iscoroutinefunction(definition.func):
        run.task = asyncio.ensure_future(definition.func(**arguments))
    else:
        # A blocking function runs in a worker thread. A timeout stops waiting for it, but
        # Python cannot stop the thread itself: make such functions check their own deadlines.
        run.task = asyncio.ensure_future(
            asyncio.to_thread(_in_thread, run, definition.func, arguments)
        )
    try:
        return await asyncio.wait_for(asyncio.shield(run.task), timeout)
    except TimeoutError:
        run.task.cancel()
        raise
    except asyncio.CancelledError:
        # The run's own task was cancelled on request, not the scheduler's wrapper around it.
        if run.cancel_requested and not _wrapper_cancelled():
            raise JobCancelled from None
        run.task.cancel()
        raise


def _wrapper_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _summary(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


async def execute(
    job_id: str,
    attempt: int = 1,
    trigger_kind: str = TriggerKind.SCHEDULE,
    store_id: str = "",
    execution_id: str | None = None,
    arguments: Mapping[str, Any] | None = None,
) -> None:
    """Run job `job_id` once, recording it; failures are recorded and retried, never raised.

    A planned run (a retry, a manual run) passes the id of its pending execution row and the
    JSON arguments it was given.
    """
    runtime = current_runtime()
    definition = runtime.definitions.get(job_id)
    if definition is None:
        logger.error("job not defined; run dropped", extra={"job_id": job_id})
        if execution_id:
            runtime.recorder.finished(
                execution_id, ExecutionStatus.FAILED, 0.0, error=LookupError("job not defined")
            )
        return
    scheduled_at = runtime.scheduled_time(store_id or job_id)
    kind = TriggerKind(trigger_kind)
    bad_arguments: ArgumentError | None = None
    try:
        call_arguments = {**definition.args, **definition.function.parse(arguments or {})}
    except ArgumentError as error:
        # Checked when the run was asked for; only a change of code since can get here.
        call_arguments, bad_arguments = {}, error
    if runtime.at_capacity(job_id):
        reason = SKIP_REASON
        if execution_id:
            runtime.recorder.finished(execution_id, ExecutionStatus.SKIPPED, 0.0, reason=reason)
        else:
            execution_id = runtime.recorder.outcome_without_run(
                job_id, definition.queue.value, scheduled_at, ExecutionStatus.SKIPPED, reason
            )
        logger.warning(
            "job run skipped: previous run still going",
            extra={"job_id": job_id, "execution_id": execution_id},
        )
        return
    if execution_id:
        runtime.recorder.started_planned(execution_id)
    else:
        execution_id = runtime.recorder.started(
            job_id, definition.queue.value, scheduled_at, attempt, kind
        )
    run = runtime.begin_run(execution_id, job_id)
    context = {"job_id": job_id, "execution_id": execution_id, "attempt": attempt}
    logger.info("job started", extra={**context, "trigger": kind.value})
    began = time.perf_counter()
    try:
        if bad_arguments is not None:
            raise bad_arguments
        result = await _call(definition, run, call_arguments)
    except JobCancelled:
        runtime.end_run(execution_id)
        duration_ms = (time.perf_counter() - began) * 1000
        runtime.recorder.finished(
            execution_id,
            ExecutionStatus.CANCELLED,
            duration_ms,
            error=JobCancelled("cancelled on request"),
        )
        logger.warning(
            "job cancelled on request", extra={**context, "duration_ms": round(duration_ms, 1)}
        )
        return
    except TimeoutError as error:
        failure: BaseException = error
        status, trace = ExecutionStatus.TIMED_OUT, None
        message = f"timed out after {definition.timeout}"
    except asyncio.CancelledError:
        runtime.end_run(execution_id)
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
        runtime.end_run(execution_id)
        runtime.recorder.finished(execution_id, ExecutionStatus.SUCCEEDED, duration_ms)
        runtime.streaks.succeeded(job_id)
        logger.info(
            "job succeeded",
            extra={**context, "duration_ms": round(duration_ms, 1), "result": _summary(result)},
        )
        return

    duration_ms = (time.perf_counter() - began) * 1000
    runtime.end_run(execution_id)
    if status is ExecutionStatus.TIMED_OUT:
        failure = TimeoutError(message)
    runtime.recorder.finished(execution_id, status, duration_ms, error=failure, traceback=trace)
    retry_at = _schedule_retry(runtime, definition, attempt, arguments)
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


def _schedule_retry(
    runtime: JobRuntime,
    definition: ScheduledJob,
    attempt: int,
    arguments: Mapping[str, Any] | None,
) -> datetime | None:
    if attempt >= definition.retry.attempts:
        return None
    delay: timedelta = definition.retry.backoff.delay_before(attempt)
    run_at = utcnow() + delay
    # A retry is a pending execution and a one-time job in the persistent store, so it shows
    # in the history at once and survives a restart.
    execution_id = runtime.recorder.planned(
        definition.id,
        definition.queue.value,
        run_at,
        attempt=attempt + 1,
        trigger_kind=TriggerKind.RETRY,
        arguments=arguments,
    )
    runtime.plan_run(
        definition.id,
        execution_id,
        run_at,
        attempt=attempt + 1,
        trigger_kind=TriggerKind.RETRY,
        arguments=arguments,
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


def mark_lost_planned_runs(engine: Engine, runtime: JobRuntime) -> int:
    """Mark pending runs with no planned job in the store as interrupted; returns how many.

    The store is written behind, so a crash can lose a planned run its history row announced.
    """
    planned = {job.id for job in runtime.scheduler.get_jobs()}
    with engine.begin() as connection:
        # A run asked for while this scheduler started has its command still waiting.
        awaited = select(SchedulerCommand.execution_id).where(
            SchedulerCommand.status == CommandStatus.PENDING,
            SchedulerCommand.execution_id.is_not(None),
        )
        pending = connection.execute(
            select(JobExecution.id, JobExecution.job_id).where(
                JobExecution.status == ExecutionStatus.PENDING,
                JobExecution.id.not_in(awaited),
            )
        ).all()
        lost = [
            execution_id
            for execution_id, job_id in pending
            if planned_run_id(job_id, execution_id) not in planned
        ]
        if lost:
            connection.execute(
                update(JobExecution)
                .where(JobExecution.id.in_(lost))
                .values(
                    status=ExecutionStatus.INTERRUPTED,
                    finished_at=utcnow(),
                    error_type="Interrupted",
                    error_message="the scheduler stopped before this planned run was stored",
                )
            )
    return len(lost)
