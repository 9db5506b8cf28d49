"""A database that stops taking writes does not stop the jobs, and nothing is lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, func, select, text

from app.components.scheduler import jobs as job_list
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.execution import current_runtime
from app.components.scheduler.main import create_scheduler
from app.core.db import create_db_engine, session_scope
from app.core.job_store import read_stored_jobs
from app.core.models import JobExecution
from app.core.schedules import Interval
from app.core.settings import Settings
from tests.helpers import stop

OUTAGE_SECONDS = 6.5  # longer than SQLite's 5 s busy timeout, so writes fail, not just wait
ticks: list[float] = []


def tick() -> None:
    ticks.append(time.monotonic())


@contextmanager
def writes_blocked(url: str) -> Iterator[None]:
    """Another connection holds the database's write lock, as a stuck migration would."""
    engine = create_db_engine(url)
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN EXCLUSIVE")
        else:
            connection.execute(
                text(
                    "LOCK TABLE job_executions, apscheduler_jobs, scheduler_instances "
                    "IN ACCESS EXCLUSIVE MODE"
                )
            )
        try:
            yield
        finally:
            connection.rollback()
    engine.dispose()


async def test_jobs_keep_running_through_an_outage_and_history_catches_up(
    settings: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks.clear()
    job = ScheduledJob(id="tick", name="Tick", func=tick, schedule=Interval(seconds=0.25))
    monkeypatch.setattr(job_list, "JOBS", (job,))
    scheduler = create_scheduler(settings, engine)
    scheduler.start()
    runtime = current_runtime()
    try:
        await asyncio.sleep(0.6)
        with writes_blocked(settings.database_url):
            before = len(ticks)
            await asyncio.sleep(OUTAGE_SECONDS)
            during = len(ticks) - before
        assert during >= OUTAGE_SECONDS / 0.25 - 3, "jobs stalled during the outage"
        assert runtime.recorder.flush(timeout=40)
    finally:
        await stop(scheduler)

    with session_scope(engine) as session:
        recorded = session.scalar(select(func.count()).select_from(JobExecution))
    assert recorded == len(ticks), "every run is in the history after the outage"
    assert runtime.recorder.healthy
    [stored] = read_stored_jobs(engine)
    assert stored.next_run_time is not None
    # The stored schedule kept moving: the last run's successor, not one from before the outage.
    assert stored.next_run_time.timestamp() > time.time() - 2
