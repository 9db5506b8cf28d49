"""How one run of a job is carried out, wherever it runs: the scheduler or a worker process.

Both call `perform` with the job's definition, and get back how the run ended; they differ
only in how they claim the run and record its end. So a timeout, a cancellation, a job's
failure and the retry it earns mean the same in both.
"""

from __future__ import annotations

import asyncio
import ctypes
import inspect
import logging
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.functions import ArgumentError
from app.core.db import utcnow
from app.core.enums import FAILED_ENDS, ExecutionStatus
from app.core.errors import JobError

logger = logging.getLogger("app.scheduler.jobs")


class JobCancelled(Exception):
    """Raised inside a job's worker thread when its run is cancelled on request."""


@dataclass
class RunningRun:
    """A run in progress: its job, and what can stop it."""

    job_id: str
    task: asyncio.Task[Any] | None = None
    thread_id: int | None = None
    cancel_requested: bool = False


@dataclass(frozen=True)
class Outcome:
    """How a run ended."""

    status: ExecutionStatus
    duration_ms: float
    error: BaseException | None = None
    # The traceback of an unexpected failure (a bug); None for a `JobError`, whose message
    # explains it.
    trace: str | None = None
    result: Any = None
    # Cancelled because the process stops, not on request: the caller re-raises the
    # cancellation once the end is recorded.
    stopped: bool = False


async def perform(
    definition: ScheduledJob,
    run: RunningRun,
    arguments: Mapping[str, Any] | None,
    *,
    process: str = "scheduler",
) -> Outcome:
    """Call the job's function with its arguments, under its timeout; never raises.

    `process` names what runs it, for the reason of a run cut short because it stopped.
    """
    began = time.perf_counter()
    error: BaseException | None = None
    trace: str | None = None
    result: Any = None
    stopped = False
    try:
        given = definition.function.parse(arguments) if arguments else {}
        result = await _call(definition, run, {**definition.args, **given})
        status = ExecutionStatus.SUCCEEDED
    except JobCancelled:
        status, error = ExecutionStatus.CANCELLED, JobCancelled("cancelled on request")
    except TimeoutError:
        status = ExecutionStatus.TIMED_OUT
        error = TimeoutError(f"timed out after {definition.timeout}")
    except asyncio.CancelledError:
        status, stopped = ExecutionStatus.INTERRUPTED, True
        error = RuntimeError(f"cancelled: the {process} stopped during the run")
    except ArgumentError as bad:
        # Checked when the run was asked for; only a change of code since can get here.
        status, error = ExecutionStatus.FAILED, bad
    except Exception as failure:  # noqa: BLE001 - a job's failure is recorded, not raised
        status, error = ExecutionStatus.FAILED, failure
        # An expected failure (JobError) is explained by its message; others are bugs.
        trace = None if isinstance(failure, JobError) else traceback.format_exc()
    duration_ms = (time.perf_counter() - began) * 1000
    return Outcome(status, duration_ms, error, trace, result, stopped)


def stop_thread(run: RunningRun) -> bool:
    """Raise JobCancelled in the thread a blocking run goes on in; False if it has none.

    Python cannot stop a thread from outside; this raises in it the next time it runs Python
    code (a blocking call in C finishes first).
    """
    if run.thread_id is None:
        return False
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(run.thread_id), ctypes.py_object(JobCancelled)
    )
    return True


def retry_time(definition: ScheduledJob, status: ExecutionStatus, attempt: int) -> datetime | None:
    """When the next attempt of a run that ended with `status` runs; None if it earns none."""
    if status not in FAILED_ENDS or attempt >= definition.retry.attempts:
        return None
    return utcnow() + definition.retry.backoff.delay_before(attempt)


def log_outcome(
    outcome: Outcome, context: Mapping[str, Any], retry_at: datetime | None
) -> str | None:
    """Log how a run ended; returns the failure's message for an alert, or None."""
    timing = {**context, "duration_ms": round(outcome.duration_ms, 1)}
    status, error = outcome.status, outcome.error
    if status is ExecutionStatus.SUCCEEDED:
        logger.info("job succeeded", extra={**timing, "result": _summary(outcome.result)})
        return None
    if status is ExecutionStatus.CANCELLED:
        logger.warning("job cancelled on request", extra=timing)
        return None
    if status is ExecutionStatus.INTERRUPTED:
        return None
    message = str(error) or type(error).__name__
    logger.error(
        f"job {'timed out' if status is ExecutionStatus.TIMED_OUT else 'failed'}: {message}",
        extra={
            **timing,
            "error": type(error).__name__,
            "retry_at": retry_at,
            **({"traceback": outcome.trace} if outcome.trace else {}),
        },
    )
    return message


def _in_thread(run: RunningRun, func: Any, arguments: Mapping[str, Any]) -> Any:
    run.thread_id = threading.get_ident()
    try:
        if run.cancel_requested:
            raise JobCancelled
        return func(**arguments)
    finally:
        run.thread_id = None


async def _call(definition: ScheduledJob, run: RunningRun, arguments: Mapping[str, Any]) -> Any:
    try:
        return await _awaited(definition, run, arguments)
    except asyncio.CancelledError:
        if run.cancel_requested:
            # Cancelled on request: the run ends as cancelled, and its task goes on to record it.
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            raise JobCancelled from None
        raise


async def _awaited(definition: ScheduledJob, run: RunningRun, arguments: Mapping[str, Any]) -> Any:
    timeout = definition.timeout.total_seconds() if definition.timeout else None
    coroutine = inspect.iscoroutinefunction(definition.func)
    if coroutine and timeout is None:
        # Awaited in the run's own task: a cancellation reaches it directly, and the run costs
        # no second task and no shield, which a burst of thousands of runs a second notices.
        return await definition.func(**arguments)
    if coroutine:
        work = asyncio.ensure_future(definition.func(**arguments))
    else:
        # A blocking function runs in a worker thread. A timeout stops waiting for it, but
        # Python cannot stop the thread itself: make such functions check their own deadlines.
        work = asyncio.ensure_future(asyncio.to_thread(_in_thread, run, definition.func, arguments))
    try:
        # Shielded: on a timeout the wait ends at once, even if the job ignores cancellation.
        return await asyncio.wait_for(asyncio.shield(work), timeout)
    except (TimeoutError, asyncio.CancelledError):
        work.cancel()
        raise


def _summary(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
