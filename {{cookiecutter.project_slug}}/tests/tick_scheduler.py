"""A scheduler process whose only job ticks every second, for the leadership tests.

Run as `python -m tests.tick_scheduler`: every scheduled time of `tick` must end up with
exactly one row in `job_executions`, whichever replica led when it fell due.
"""

from __future__ import annotations

from app.components.scheduler import jobs
from app.components.scheduler.definition import ScheduledJob
from app.core.schedules import Interval
from app.entrypoints.scheduler import main as run_scheduler_process

TICK_JOB_ID = "tick"


def tick() -> str:
    """Nothing to do: the row is what the tests count."""
    return "tick"


if __name__ == "__main__":
    # What the in-process tests do with monkeypatch: every reader looks the list up here.
    jobs.JOBS = (
        ScheduledJob(id=TICK_JOB_ID, name="Tick", func=tick, schedule=Interval(seconds=1)),
    )
    run_scheduler_process()
