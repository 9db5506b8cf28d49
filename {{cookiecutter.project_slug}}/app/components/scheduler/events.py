"""One log line per job outcome, from APScheduler's events."""

from __future__ import annotations

import logging

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)

from app.core.errors import JobError

logger = logging.getLogger("app.scheduler.jobs")

JOB_OUTCOME_EVENTS = EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED


def _summary(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def log_job_outcome(event: JobExecutionEvent) -> None:
    """Log a finished, failed or missed run with the job id and scheduled time."""
    context = {"job_id": event.job_id, "scheduled_at": event.scheduled_run_time.isoformat()}
    if event.code == EVENT_JOB_MISSED:
        logger.warning("job run missed", extra=context)
    elif event.exception is None:
        logger.info("job succeeded", extra={**context, "result": _summary(event.retval)})
    elif isinstance(event.exception, JobError):
        logger.error(
            f"job failed: {event.exception}",
            extra={**context, "error": type(event.exception).__name__},
        )
    else:
        logger.error(
            f"job failed: {type(event.exception).__name__}: {event.exception}",
            extra={
                **context,
                "error": type(event.exception).__name__,
                "traceback": event.traceback,
            },
        )
