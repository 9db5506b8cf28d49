"""The timer holds the runtime jobs due within its horizon; the others wait in their rows.

The horizon here is a second long (the setting's floor is a minute, which keeps the leader's
reads rare), so a test sees jobs come within it, run, go quiet and be let go in seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from app.components.management.schemas import AddJobRequest
from app.components.management.service import Management
from app.components.scheduler.control import command_consumer
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.execution import JobRuntime, current_runtime
from app.components.scheduler.main import create_scheduler
from app.core.db import session_scope, utcnow
from app.core.enums import ExecutionStatus, TriggerKind
from app.core.models import Job, JobExecution
from app.core.schedule_specs import IntervalSpec, OnceSpec, Spec
from app.core.schedules import Interval
from app.core.settings import Settings
from tests.helpers import stop, store_runtime_row, wait_until

HORIZON_SECONDS = 1.0
notes: list[str] = []


def note(label: str = "") -> None:
    notes.append(label)


CODE = (
    ScheduledJob(
        id="noter", name="Noter", func=note, schedule=Interval(hours=12), inputs=("label",)
    ),
)


@pytest.fixture
def short(settings: Settings, engine: Engine) -> Settings:
    """The test's settings with a one-second horizon and commands that do not wait, with the
    code's jobs stored as a leader that stopped leaves them."""
    short = settings.model_copy(
        update={"timer_horizon_seconds": HORIZON_SECONDS, "command_wait_seconds": 0.05}
    )
    create_scheduler(CODE, short, engine)
    current_runtime().lease.give_up()
    return short


def add(engine: Engine, settings: Settings, job_id: str, schedule: Spec) -> None:
    request = AddJobRequest(
        id=job_id, name=job_id, function="note", args={"label": job_id}, schedule=schedule
    )
    Management(engine, settings, CODE).add(request)


def runs(engine: Engine, job_id: str) -> list[JobExecution]:
    current_runtime().recorder.flush()
    with session_scope(engine) as session:
        rows = session.scalars(select(JobExecution).where(JobExecution.job_id == job_id)).all()
    return sorted(rows, key=lambda row: (row.scheduled_at, row.attempt))


def succeeded(engine: Engine, job_id: str, count: int) -> bool:
    return sum(row.status == ExecutionStatus.SUCCEEDED for row in runs(engine, job_id)) >= count


@asynccontextmanager
async def leading(
    settings: Settings, engine: Engine, code: tuple[ScheduledJob, ...] = CODE
) -> AsyncIterator[JobRuntime]:
    """A started leader with `code`, applying changes and commands as the real process does."""
    scheduler = create_scheduler(code, settings, engine)
    runtime = current_runtime()
    loop = asyncio.get_running_loop()
    consumer = command_consumer(runtime, loop)
    scheduler.start()
    consumer.start()
    try:
        yield runtime
    finally:
        await asyncio.to_thread(consumer.stop)
        await stop(scheduler)


def at(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


async def test_a_job_due_beyond_the_horizon_is_read_when_it_comes_within(
    short: Settings, engine: Engine
) -> None:
    # Far enough beyond the one-second horizon that a slow start still builds without it.
    due = at(4)
    add(engine, short, "later", OnceSpec(at=due))
    async with leading(short, engine) as runtime:
        assert "later" not in runtime.jobs
        assert runtime.scheduler.get_job("later") is None
        await wait_until(lambda: succeeded(engine, "later", 1), 10, "the run")
        # A one-off job that ran has nothing more to do: the timer lets it go.
        await wait_until(lambda: "later" not in runtime.jobs, 5, "the job let go")
    [run] = runs(engine, "later")
    assert run.scheduled_at == due
    assert run.started_at is not None
    assert run.started_at - due < timedelta(seconds=1)
    with session_scope(engine) as session:
        assert session.get_one(Job, "later").next_run_at is None


async def test_a_recurring_job_let_go_between_runs_runs_each_time_once(
    short: Settings, engine: Engine
) -> None:
    add(engine, short, "every_two", IntervalSpec(seconds=2))
    absent_between_runs = []

    def three_runs(runtime: JobRuntime) -> bool:
        if "every_two" not in runtime.jobs:
            absent_between_runs.append(time.monotonic())
        return succeeded(engine, "every_two", 3)

    async with leading(short, engine) as runtime:
        await wait_until(lambda: three_runs(runtime), 15, "three runs")
    assert absent_between_runs, "the job was never let go between its runs"
    times = [row.scheduled_at for row in runs(engine, "every_two")]
    assert len(times) == len(set(times))
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(times))


async def test_a_code_job_stays_in_the_timer_between_runs(short: Settings, engine: Engine) -> None:
    code = (
        *CODE,
        ScheduledJob(id="ticker", name="Ticker", func=note, schedule=Interval(seconds=2)),
    )
    absent = []

    def two_runs(runtime: JobRuntime) -> bool:
        if "ticker" not in runtime.jobs or runtime.scheduler.get_job("ticker") is None:
            absent.append(time.monotonic())
        return succeeded(engine, "ticker", 2)

    async with leading(short, engine, code) as runtime:
        await wait_until(lambda: two_runs(runtime), 15, "two runs")
    assert absent == []


async def test_a_manual_run_of_a_job_beyond_the_horizon_runs(
    short: Settings, engine: Engine
) -> None:
    due = at(86400)
    add(engine, short, "tomorrow", OnceSpec(at=due))
    async with leading(short, engine) as runtime:
        assert "tomorrow" not in runtime.jobs
        await asyncio.to_thread(Management(engine, short, CODE).run, "tomorrow", {})
        await wait_until(lambda: succeeded(engine, "tomorrow", 1), 10, "the manual run")
    [run] = runs(engine, "tomorrow")
    assert run.trigger_kind == TriggerKind.MANUAL
    with session_scope(engine) as session:
        assert session.get_one(Job, "tomorrow").next_run_at == due


async def test_a_change_that_brings_a_job_within_the_horizon_runs_it(
    short: Settings, engine: Engine
) -> None:
    add(engine, short, "moved", OnceSpec(at=at(86400)))
    async with leading(short, engine) as runtime:
        assert "moved" not in runtime.jobs
        sooner = at(1.5)
        manage = Management(engine, short, CODE)
        await asyncio.to_thread(manage.reschedule, "moved", OnceSpec(at=sooner))
        await wait_until(lambda: succeeded(engine, "moved", 1), 10, "the run")
    [run] = runs(engine, "moved")
    assert (run.scheduled_at, run.trigger_kind) == (sooner, TriggerKind.SCHEDULE)


async def test_an_invalid_row_within_the_horizon_is_reported_once(
    short: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # Stored before its function left the code: the API would refuse it now.
    store_runtime_row(engine, "orphan", "removed_function", next_run_at=at(3))
    caplog.set_level(logging.ERROR, logger="app.scheduler.jobs")

    def reports() -> list[logging.LogRecord]:
        return [r for r in caplog.records if getattr(r, "job_id", None) == "orphan"]

    async with leading(short, engine) as runtime:
        await wait_until(lambda: bool(reports()), 10, "the report")
        # The row stays within the horizon: the moves that follow read it again, and say
        # nothing more.
        ends = {runtime.horizon.end}

        def moved_on() -> bool:
            ends.add(runtime.horizon.end)
            return len(ends) > 4

        await wait_until(moved_on, 10, "more moves")
    assert [r.getMessage() for r in reports()] == [
        "runtime job not scheduled: its definition is invalid"
    ]
    assert "removed_function" in str(getattr(reports()[0], "reason", ""))
    assert runs(engine, "orphan") == []
