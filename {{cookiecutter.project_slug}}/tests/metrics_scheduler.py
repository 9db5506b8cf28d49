"""A scheduler process whose jobs end every way a run can, for the metrics tests.

Run as `python -m tests.metrics_scheduler`: `succeed` succeeds, `fail` fails and is retried
once, and `linger` outlasts its interval, so the times that find it running are skipped.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from app.components.scheduler import jobs as job_list
from app.components.scheduler.definition import Fixed, Retry, ScheduledJob
from app.core.errors import JobError
from app.core.schedules import Interval
from app.entrypoints.scheduler import main as run_scheduler_process


def succeed() -> str:
    return "done"


def fail() -> None:
    raise JobError("the upstream said no")


async def linger() -> None:
    await asyncio.sleep(0.7)


JOBS = (
    ScheduledJob(id="succeed", name="Succeed", func=succeed, schedule=Interval(seconds=0.3)),
    ScheduledJob(
        id="fail",
        name="Fail",
        func=fail,
        schedule=Interval(seconds=0.5),
        retry=Retry(attempts=2, backoff=Fixed(timedelta(seconds=0.2))),
    ),
    ScheduledJob(id="linger", name="Linger", func=linger, schedule=Interval(seconds=0.25)),
)

if __name__ == "__main__":
    job_list.JOBS = JOBS
    run_scheduler_process()
