"""Worker processes as the database shows them: their heartbeats, and each queue's load.

Each worker process writes its heartbeat row (`worker_processes`) with the queues it serves
and the runs it has going; what waits is read from the runs themselves (`pending` rows queued
for the workers). The health check, `worker status`, the API and the scheduler's metrics all
read this one report, so they agree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.core.db import database_now, tables_exist
from app.core.enums import ExecutionStatus, Queue, WorkerState
from app.core.models import JobExecution, WorkerProcess
from app.core.times import UtcTime

# Newest first; older rows belong to processes long gone.
_LATEST_WORKERS = select(WorkerProcess).order_by(WorkerProcess.last_seen.desc()).limit(50)


class WorkerInfo(BaseModel):
    """A worker process, from its heartbeat."""

    worker_id: str
    hostname: str
    pid: int
    state: WorkerState
    started_at: UtcTime
    last_seen: UtcTime
    heartbeat_age_seconds: float
    fresh: bool
    concurrency: dict[str, int] = Field(
        description="The queues it serves, and how many runs of each it runs at once."
    )
    running: int = Field(description="Runs in progress on it at its last heartbeat.")

    @property
    def serving(self) -> bool:
        """Alive and taking runs: fresh, and neither stopping nor stopped."""
        return self.fresh and self.state is WorkerState.RUNNING


class QueueLoad(BaseModel):
    """One queue: who serves it, what runs, and what waits."""

    queue: str
    workers: int = Field(description="Worker processes serving it now.")
    capacity: int = Field(description="Runs of it those workers run at once, in all.")
    running: int = Field(description="Its runs in progress on workers.")
    waiting: int = Field(description="Its runs due and queued, not yet started.")
    oldest_wait_seconds: float | None = Field(
        description="How long the longest-waiting of those has waited; null when none waits."
    )
    later: int = Field(description="Its runs queued for a later time (retries).")


class WorkersHealth(BaseModel):
    """Whether every queue has a worker, with the workers and the queues' load."""

    healthy: bool
    detail: str
    workers: list[WorkerInfo] = Field(
        default_factory=list, description="The worker processes heard from recently, newest first."
    )
    queues: list[QueueLoad] = Field(default_factory=list)


def read_workers(engine: Engine, session: Session, stale_after_seconds: float) -> WorkersHealth:
    """The workers' report, read in `session` (of `engine`)."""
    if not tables_exist(engine, WorkerProcess.__tablename__):
        return WorkersHealth(healthy=False, detail="no worker has reported a heartbeat yet")
    rows = session.scalars(_LATEST_WORKERS).all()
    # Read after the rows, so no heartbeat read is newer than the clock it is aged by.
    now = database_now(session.connection())
    workers = [_info(row, stale_after_seconds, now) for row in rows]
    queues = _queue_loads(session, workers, now)
    healthy, detail = _judge(workers, queues)
    return WorkersHealth(healthy=healthy, detail=detail, workers=workers, queues=queues)


def _info(row: WorkerProcess, stale_after: float, now: datetime) -> WorkerInfo:
    age = max(0.0, (now - row.last_seen).total_seconds())
    return WorkerInfo(
        worker_id=row.worker_id,
        hostname=row.hostname,
        pid=row.pid,
        state=WorkerState(row.state),
        started_at=row.started_at,
        last_seen=row.last_seen,
        heartbeat_age_seconds=round(age, 3),
        fresh=age <= stale_after,
        concurrency=json.loads(row.concurrency),
        running=row.running,
    )


def _queue_loads(session: Session, workers: Sequence[WorkerInfo], now: datetime) -> list[QueueLoad]:
    pending = JobExecution.status == ExecutionStatus.PENDING
    due = JobExecution.scheduled_at <= now
    # The runs queued for the workers (and those they run) carry their queue job's id; read
    # from the (queue, status, scheduled_at) index, pending and running ranges only.
    counted = {
        row.queue: row
        for row in session.execute(
            select(
                JobExecution.queue,
                func.count().filter(pending, due).label("waiting"),
                func.min(JobExecution.scheduled_at).filter(pending, due).label("oldest"),
                func.count().filter(pending, ~due).label("later"),
                func.count()
                .filter(JobExecution.status == ExecutionStatus.RUNNING)
                .label("running"),
            )
            .where(
                JobExecution.status.in_([ExecutionStatus.PENDING, ExecutionStatus.RUNNING]),
                JobExecution.task_id.is_not(None),
            )
            .group_by(JobExecution.queue)
        )
    }
    loads = []
    for queue in Queue:
        serving = [w for w in workers if w.serving and queue.value in w.concurrency]
        row = counted.get(queue.value)
        oldest = row.oldest if row is not None else None
        loads.append(
            QueueLoad(
                queue=queue.value,
                workers=len(serving),
                capacity=sum(w.concurrency[queue.value] for w in serving),
                running=row.running if row is not None else 0,
                waiting=row.waiting if row is not None else 0,
                oldest_wait_seconds=(
                    round(max(0.0, (now - oldest).total_seconds()), 3) if oldest else None
                ),
                later=row.later if row is not None else 0,
            )
        )
    return loads


def _judge(workers: Sequence[WorkerInfo], queues: Sequence[QueueLoad]) -> tuple[bool, str]:
    if not workers:
        return False, "no worker has reported a heartbeat yet"
    serving = [w for w in workers if w.serving]
    if not serving:
        latest = workers[0]
        age = latest.heartbeat_age_seconds
        if latest.state is WorkerState.STOPPED:
            return False, f"no worker is running; the last one stopped {age:.0f} s ago"
        return False, f"no worker is running; the newest heartbeat is {age:.1f} s old"
    count = f"{len(serving)} worker{'s' if len(serving) != 1 else ''} running"
    unserved = [load.queue for load in queues if load.workers == 0]
    if unserved:
        theirs = "their runs wait" if len(unserved) > 1 else "its runs wait"
        return False, f"{count}, but none serves {', '.join(unserved)}: {theirs}"
    return True, f"{count}, every queue served"
