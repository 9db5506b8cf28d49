"""A scheduler process with quick jobs, for the tests that manage a running scheduler.

Run as `python -m tests.management_scheduler`; the tests give their in-process API and CLI the
same `JOBS`, so all of them agree on what the jobs are.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from app.components.scheduler import jobs as job_list
from app.components.scheduler.definition import ScheduledJob
from app.core.schedules import Interval
from app.core.settings import get_settings
from app.entrypoints.scheduler import main as run_scheduler_process


def tick() -> None:
    """Append a line per run, so a test can count runs from another process."""
    path = get_settings().data_dir / "ticks.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as ticks:
        ticks.write(f"{time.time()}\n")


async def wait_async(seconds: float = 60.0) -> float:
    """Wait on the event loop: cancellable at once."""
    await asyncio.sleep(seconds)
    return seconds


def wait_blocking(seconds: float = 60.0) -> float:
    """Wait in a worker thread, in short steps, as a job that checks in now and then would."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return seconds


JOBS = (
    ScheduledJob(id="tick", name="Tick", func=tick, schedule=Interval(seconds=0.5)),
    ScheduledJob(
        id="wait_async",
        name="Wait on the loop",
        func=wait_async,
        schedule=Interval(hours=12),
        inputs=("seconds",),
        timeout=timedelta(minutes=5),
    ),
    ScheduledJob(
        id="wait_blocking",
        name="Wait in a thread",
        func=wait_blocking,
        schedule=Interval(hours=12),
        inputs=("seconds",),
    ),
)

if __name__ == "__main__":
    job_list.JOBS = JOBS
    run_scheduler_process()
