"""A scheduler replica for the failover drills and tests: `python -m benchmarks.replica`.

It is the project's scheduler process with two code jobs of its own:
- `tick`, every second: each of its scheduled times must end up with exactly one row in
  `job_executions`, whichever replica led when it fell due (`account_for` checks);
- `mark`, whose function runtime jobs call with their own id: it appends the id to the file
  `DRILL_RUNS_FILE` names, so a drill counts how often each job really ran, whatever the
  history says.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from app.components.scheduler import jobs
from app.components.scheduler.definition import ScheduledJob
from app.core.enums import ExecutionStatus, TriggerKind
from app.core.models import JobExecution
from app.core.schedules import Interval

TICK_JOB_ID = "tick"
MARK_FUNCTION = "mark"
RUNS_FILE_VARIABLE = "DRILL_RUNS_FILE"


def tick() -> str:
    """Nothing to do: its row is what is counted."""
    return "tick"


def mark(job: str = "") -> str:
    """Record that `job` ran: one line per run, appended whole, whichever process runs it."""
    path = os.environ.get(RUNS_FILE_VARIABLE)
    if path and job:
        with open(path, "a", encoding="utf-8") as runs:
            runs.write(job + "\n")
    return job


REPLICA_JOBS = (
    ScheduledJob(id=TICK_JOB_ID, name="Tick", func=tick, schedule=Interval(seconds=1)),
    # Scheduled rarely; it is here so that runtime jobs may call `mark`.
    ScheduledJob(
        id=MARK_FUNCTION, name="Mark", func=mark, schedule=Interval(days=1), inputs=("job",)
    ),
)


def succeeded_since(engine: Engine, since: datetime, job_id: str = TICK_JOB_ID) -> int:
    """How many scheduled times of `job_id` after `since` have run and succeeded."""
    with engine.connect() as connection:
        count = connection.scalar(
            select(func.count()).where(
                JobExecution.job_id == job_id,
                JobExecution.scheduled_at > since,
                JobExecution.status == ExecutionStatus.SUCCEEDED,
            )
        )
    return int(count or 0)


@dataclass(frozen=True)
class Accounting:
    """How the scheduled times of a once-a-second job are recorded, from its first to its last."""

    times: int
    duplicates: list[datetime]
    unaccounted: list[datetime]
    statuses: dict[str, int]


def account_for(engine: Engine, job_id: str = TICK_JOB_ID) -> Accounting:
    """Every scheduled time of `job_id` (every second) should have exactly one row."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(JobExecution.scheduled_at, JobExecution.status).where(
                JobExecution.job_id == job_id,
                JobExecution.trigger_kind == TriggerKind.SCHEDULE,
            )
        ).all()
    per_time = Counter(row.scheduled_at for row in rows)
    if not per_time:
        return Accounting(0, [], [], {})
    first, last = min(per_time), max(per_time)
    seconds = int((last - first).total_seconds())
    expected = [first + timedelta(seconds=k) for k in range(seconds + 1)]
    return Accounting(
        times=len(expected),
        duplicates=sorted(moment for moment, count in per_time.items() if count > 1),
        unaccounted=[moment for moment in expected if moment not in per_time],
        statuses=dict(Counter(str(row.status) for row in rows)),
    )


if __name__ == "__main__":
    from app.entrypoints.scheduler import main as run_scheduler_process

    # What the in-process tests do with monkeypatch: every reader looks the list up here.
    jobs.JOBS = REPLICA_JOBS
    run_scheduler_process()
