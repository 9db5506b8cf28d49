"""A database that stops taking writes: nothing runs unclaimed, and every time gets its row.

Runs cannot be claimed while the database refuses writes, so none start; when it takes them
again the scheduler, without a restart, claims the times that fell due meanwhile under the
job's catch-up policy (the default: the latest runs, the others are recorded as missed).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Engine, select, text

from app.components.scheduler import metrics
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.execution import current_runtime
from app.components.scheduler.main import create_scheduler
from app.core.db import create_db_engine, session_scope
from app.core.enums import ExecutionStatus
from app.core.models import Job, JobExecution
from app.core.schedules import Interval
from app.core.settings import Settings
from tests.helpers import stop, wait_until

OUTAGE_SECONDS = 6.5  # longer than SQLite's 5 s busy timeout, so writes fail, not just wait
ticks: list[float] = []


def tick() -> None:
    ticks.append(time.monotonic())


@contextmanager
def writes_blocked(url: str) -> Iterator[None]:
    """Another connection holds the database's write lock, as a stuck migration would."""
    engine = create_db_engine(url)
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        raw.driver_connection.execute("BEGIN EXCLUSIVE")  # type: ignore[union-attr]
        try:
            yield
        finally:
            raw.driver_connection.rollback()  # type: ignore[union-attr]
            raw.close()
            engine.dispose()
        return
    with engine.connect() as connection:
        connection.execute(
            text("LOCK TABLE job_executions, jobs, scheduler_instances IN ACCESS EXCLUSIVE MODE")
        )
        try:
            yield
        finally:
            connection.rollback()
    engine.dispose()


def write_failures(operation: str) -> float:
    """The scheduler's count of refused writes of `operation`, as /metrics serves it."""
    value = metrics.REGISTRY.get_sample_value(
        "scheduler_database_write_failures_total", {"operation": operation}
    )
    assert value is not None
    return value


async def test_an_outage_leaves_every_scheduled_time_accounted_for(
    settings: Settings, engine: Engine
) -> None:
    ticks.clear()
    period = timedelta(seconds=0.25)
    job = ScheduledJob(id="tick", name="Tick", func=tick, schedule=Interval(seconds=0.25))
    # An outage shorter than the lease: the leader keeps leading through it. (One longer than
    # the lease ends the leadership; the process leads again from the tables once it can.)
    settings = settings.model_copy(update={"leader_lease_seconds": 30.0})
    claims_refused = write_failures("claims")
    scheduler = create_scheduler((job,), settings, engine)
    scheduler.start()
    runtime = current_runtime()
    try:
        await asyncio.sleep(0.6)
        with writes_blocked(settings.database_url):
            before = len(ticks)
            await asyncio.sleep(OUTAGE_SECONDS)
            # Nothing runs that is not claimed, and nothing can be claimed now.
            assert len(ticks) - before <= 1
            if engine.dialect.name == "sqlite":
                # Each refused claim is counted, for the alert on database writes. (PostgreSQL
                # does not refuse them: they wait for the lock.)
                assert write_failures("claims") > claims_refused
        await wait_until(lambda: runtime.claimer.healthy and bool(ticks), 30, "claims again")
        after = len(ticks)
        await wait_until(lambda: len(ticks) >= after + 3, 10, "the schedule going on")
        assert runtime.recorder.flush(timeout=40)
    finally:
        await stop(scheduler)
        await asyncio.sleep(0.05)
    runtime.recorder.flush(timeout=10)

    with session_scope(engine) as session:
        rows = session.scalars(select(JobExecution).order_by(JobExecution.scheduled_at)).all()
        next_run_at = session.get_one(Job, "tick").next_run_at
    times = [row.scheduled_at for row in rows]
    # One row per scheduled time, on the job's grid, none left out and none twice.
    assert all(later - earlier == period for earlier, later in itertools.pairwise(times))
    statuses = Counter(row.status for row in rows)
    # Stopping the scheduler may catch the last run in flight: it is recorded as interrupted.
    done = statuses[ExecutionStatus.SUCCEEDED]
    assert done <= len(ticks) <= done + statuses[ExecutionStatus.INTERRUPTED]
    assert statuses[ExecutionStatus.INTERRUPTED] <= 1
    # The times that fell due during the outage: the latest ran, the others are missed.
    missed = [row for row in rows if row.status == ExecutionStatus.MISSED]
    assert len(missed) >= OUTAGE_SECONDS / 0.25 - 4
    assert {row.error_message for row in missed} == {
        "a later scheduled time ran instead (catch_up=latest)"
    }
    # A catch-up run can still be going when the next time is claimed: that one is skipped.
    assert set(statuses) <= {
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.MISSED,
        ExecutionStatus.SKIPPED,
        ExecutionStatus.INTERRUPTED,
    }
    assert next_run_at is not None
    assert next_run_at > times[-1]
