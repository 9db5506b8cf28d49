"""A scheduler process whose only job blocks, for the shutdown tests.

Run as `python -m tests.slow_job_scheduler` with SLOW_JOB_SECONDS and SLOW_JOB_MARKER set: the
job starts a second after the scheduler does, touches the marker file, then blocks in a worker
thread. (A one-time job due at a fixed moment could pass before a slow start-up is done.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from app.components.scheduler import jobs
from app.components.scheduler.definition import ScheduledJob
from app.core.schedules import Interval
from app.entrypoints.scheduler import main as run_scheduler_process


def slow_job() -> str:
    """Touch the marker, then block for the configured time."""
    Path(os.environ["SLOW_JOB_MARKER"]).touch()
    time.sleep(float(os.environ["SLOW_JOB_SECONDS"]))
    return "slept"


if __name__ == "__main__":
    slow = ScheduledJob(id="slow", name="Slow", func=slow_job, schedule=Interval(seconds=1))
    # What the in-process tests do with monkeypatch: every reader looks the list up here.
    jobs.JOBS = (slow,)
    run_scheduler_process()
