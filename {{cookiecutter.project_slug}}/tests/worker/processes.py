"""The scheduler and worker processes of the worker tests, with jobs of their own.

`python -m tests.worker.processes` with TEST_PROCESS_ROLE set to `scheduler` or `worker`
(TEST_WORKER_QUEUES naming its queues): both load the same job list, as a scheduler and its
workers run the same code.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

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


async def linger() -> None:
    await asyncio.sleep(5)


def hourly(job_id: str, func: Callable[[], object], **options: Any) -> ScheduledJob:
    """A job the tests start by hand: its hourly schedule never fires during a test."""
    return ScheduledJob(
        id=job_id, name=job_id.title(), func=func, schedule=Interval(hours=1), **options
    )


RETRY_ONCE = Retry(attempts=2, backoff=Fixed(timedelta(seconds=1)))

# At most one and at most two runs at once, whichever worker starts them.
LIMITED = tuple(
    hourly(job_id, linger, queue=Queue.CRITICAL, max_instances=limit)
    for job_id, limit in (("single", 1), ("pair", 2))
)

# One job per queue, for the backlog test: many of their runs may go at once.
HOLDS = tuple(
    hourly(f"hold_{queue.value}", hold, queue=queue, max_instances=100) for queue in Queue
)

# One low queue, two priorities: under a backlog the urgent runs go first.
RANKED = tuple(
    hourly(job_id, tick, queue=Queue.LOW, priority=priority, max_instances=100)
    for job_id, priority in (("urgent", 10), ("routine", -5))
)

JOBS = (
    ScheduledJob(id="tick", name="Tick", func=tick, schedule=Interval(seconds=1)),
    hourly("flaky", always_fails, retry=RETRY_ONCE, queue=Queue.CRITICAL),
    hourly("slow", too_slow, timeout=timedelta(seconds=0.5), queue=Queue.LOW),
    hourly("hang", blocks),
    hourly("broken", mends),
    hourly("fragile", fragile, retry=RETRY_ONCE),
    *HOLDS,
    *RANKED,
    *LIMITED,
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
