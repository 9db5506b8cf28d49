"""A scheduler process whose only job blocks, for the shutdown tests.

Run as `python -m tests.slow_job_scheduler` with SLOW_JOB_SECONDS and SLOW_JOB_MARKER set: the
job starts 0.3 s after start-up, touches the marker file, then blocks in a worker thread.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from app.components.scheduler import main
from app.components.scheduler.definition import ScheduledJob
from app.core.db import utcnow
from app.core.schedules import Once
from app.entrypoints.scheduler import main as run_scheduler_process


def slow_job() -> str:
    """Touch the marker, then block for the configured time."""
    Path(os.environ["SLOW_JOB_MARKER"]).touch()
    time.sleep(float(os.environ["SLOW_JOB_SECONDS"]))
    return "slept"


if __name__ == "__main__":
    start_soon = Once(at=utcnow() + timedelta(milliseconds=300))
    slow = ScheduledJob(id="slow", name="Slow", func=slow_job, schedule=start_soon)
    # The replacement the in-process tests make with monkeypatch; mypy sees no exported JOBS.
    setattr(main, "JOBS", (slow,))  # noqa: B010
    run_scheduler_process()
