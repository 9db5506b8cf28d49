"""The scheduler and worker processes of the worker tests, with jobs of their own.

`python -m tests.worker.processes` with TEST_PROCESS_ROLE set to `scheduler` or `worker`
(TEST_WORKER_QUEUES naming its queues): both load the same job list, as a scheduler and its
workers run the same code.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path

from app.components.scheduler import jobs
from app.components.scheduler.definition import Fixed, Retry, ScheduledJob
from app.core.enums import Queue
from app.core.errors import JobError
from app.core.schedules import Interval


def tick() -> str:
    return "tick"


def always_fails() -> None:
    raise JobError("upstream refused")


async def too_slow() -> None:
    await asyncio.sleep(30)


def blocks(seconds: float = 60) -> None:
    # Python code in a loop: a cancel raises in the thread between two sleeps.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def fragile() -> str:
    """Blocks on its first attempt (for a test to kill its worker), succeeds on the next."""
    marker = Path(os.environ["TEST_MARKER_DIR"]) / "fragile-started"
    if marker.exists():
        return "second time lucky"
    marker.touch()
    blocks()
    return "not killed"


def mends() -> str:
    """Fails until the test leaves a marker saying it is mended."""
    if (Path(os.environ["TEST_MARKER_DIR"]) / "mended").exists():
        return "mended"
    raise JobError("still broken")


async def hold() -> None:
    await asyncio.sleep(1)


# One job per queue, for the backlog test: many of their runs may go at once.
HOLDS = tuple(
    ScheduledJob(
        id=f"hold_{queue.value}",
        name=f"Hold {queue.value}",
        func=hold,
        schedule=Interval(hours=1),
        queue=queue,
        max_instances=100,
    )
    for queue in Queue
)

# One low queue, two priorities: under a backlog the urgent runs go first.
RANKED = tuple(
    ScheduledJob(
        id=job_id,
        name=job_id.title(),
        func=tick,
        schedule=Interval(hours=1),
        queue=Queue.LOW,
        priority=priority,
        max_instances=100,
    )
    for job_id, priority in (("urgent", 10), ("routine", -5))
)

JOBS = (
    ScheduledJob(id="tick", name="Tick", func=tick, schedule=Interval(seconds=1)),
    ScheduledJob(
        id="flaky",
        name="Flaky",
        func=always_fails,
        schedule=Interval(hours=1),
        retry=Retry(attempts=2, backoff=Fixed(timedelta(seconds=1))),
        queue=Queue.CRITICAL,
    ),
    ScheduledJob(
        id="slow",
        name="Slow",
        func=too_slow,
        schedule=Interval(hours=1),
        timeout=timedelta(seconds=0.5),
        queue=Queue.LOW,
    ),
    ScheduledJob(id="hang", name="Hang", func=blocks, schedule=Interval(hours=1)),
    ScheduledJob(id="broken", name="Broken", func=mends, schedule=Interval(hours=1)),
    ScheduledJob(
        id="fragile",
        name="Fragile",
        func=fragile,
        schedule=Interval(hours=1),
        retry=Retry(attempts=2, backoff=Fixed(timedelta(seconds=1))),
    ),
    *HOLDS,
    *RANKED,
)


if __name__ == "__main__":
    # What the in-process tests do with monkeypatch: every reader looks the list up here.
    jobs.JOBS = JOBS
    if os.environ["TEST_PROCESS_ROLE"] == "scheduler":
        from app.entrypoints.scheduler import main as run_scheduler

        run_scheduler()
    else:
        from app.entrypoints.worker import serve

        serve(os.environ.get("TEST_WORKER_QUEUES"))
