"""`create_scheduler()` registers exactly the code-defined jobs; the `jobs` table keeps state."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from app.components.management.service import Management
from app.components.scheduler.definition import Delays, Retry, ScheduledJob
from app.components.scheduler.jobs import JOBS
from app.components.scheduler.main import JobDefinitionError, create_scheduler
from app.core.db import session_scope, utcnow
from app.core.enums import CatchUp, ExecutionStatus, JobOrigin
from app.core.models import Job, JobExecution
from app.core.schedule_specs import IntervalSpec
from app.core.schedules import Cron, CronFields, Interval, Once, describe_trigger
from app.core.settings import Settings
from app.services.retention import cleanup_old_records
from tests.helpers import stop, store_runtime_row, wait_until


def expected_triggers(timezone: str) -> dict[str, str]:
    """The pinned job list: changing a job's id or schedule must change this test too."""
    return {
        "system_maintenance": "every 6h",
        "cleanup_old_records": f'cron "30 3 * * *" ({timezone})',
{%- if cookiecutter.include_example_jobs == "yes" %}
        "daily_report": f'cron "0 6 * * *" ({timezone})',
        "cleanup_temp_files": "every 1h",
        "sync_external_data": "every 15m",
{%- endif %}
    }


def test_registers_exactly_the_expected_jobs(settings: Settings, engine: Engine) -> None:
    scheduler = create_scheduler(settings=settings, engine=engine)
    registered = {job.id: describe_trigger(job.trigger) for job in scheduler.get_jobs()}
    assert registered == expected_triggers(settings.timezone)
    assert {job.id for job in JOBS} == set(registered)


def test_every_job_has_a_readable_name(settings: Settings, engine: Engine) -> None:
    for job in create_scheduler(settings=settings, engine=engine).get_jobs():
        assert job.name
        assert job.name != job.id


def rows(engine: Engine) -> dict[str, Job]:
    with session_scope(engine) as session:
        return {row.id: row for row in session.scalars(select(Job))}


def test_jobs_are_stored_as_plain_rows(settings: Settings, engine: Engine) -> None:
    scheduler = create_scheduler(settings=settings, engine=engine)
    stored = rows(engine)
    assert set(stored) == set(expected_triggers(settings.timezone))
    timer = {job.id: job.next_run_time for job in scheduler.get_jobs()}
    for job_id, row in stored.items():
        assert row.origin == JobOrigin.CODE
        assert (row.paused, row.version) == (False, 1)
        assert row.schedule == row.code_schedule
        assert row.next_run_at == timer[job_id]


def test_restart_keeps_next_run_times_and_pauses(settings: Settings, engine: Engine) -> None:
    first = create_scheduler(settings=settings, engine=engine)
    before = {job.id: job.next_run_time for job in first.get_jobs()}
    Management(engine, settings).pause("cleanup_old_records")

    second = create_scheduler(settings=settings, engine=engine)
    after = {job.id: job.next_run_time for job in second.get_jobs()}
    assert after.pop("cleanup_old_records") is None
    assert after == {k: v for k, v in before.items() if k != "cleanup_old_records"}
    assert rows(engine)["cleanup_old_records"].paused


def test_changed_schedule_in_code_replaces_the_stored_one(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    create_scheduler(settings=settings, engine=engine)
    Management(engine, settings).reschedule("cleanup_old_records", IntervalSpec(minutes=30))
    Management(engine, settings).pause("cleanup_old_records")
    kept = create_scheduler(settings=settings, engine=engine).get_job("cleanup_old_records")
    assert kept is not None
    assert describe_trigger(kept.trigger) == "every 30m"

    changed = ScheduledJob(
        id="cleanup_old_records",
        name="Prune old scheduler records",
        func=cleanup_old_records,
        schedule=Interval(minutes=5),
    )
    caplog.set_level(logging.WARNING)
    job = create_scheduler((changed,), settings, engine).get_job("cleanup_old_records")
    assert job is not None
    assert describe_trigger(job.trigger) == "every 5m"
    assert "schedule override dropped: the schedule in code changed since it was made" in (
        caplog.messages
    )
    row = rows(engine)["cleanup_old_records"]
    assert (row.name, row.schedule) == ("Prune old scheduler records", row.code_schedule)
    assert (row.paused, row.version) == (False, 4)


def test_equal_schedules_written_differently_are_the_same(
    settings: Settings, engine: Engine
) -> None:
    hourly = ScheduledJob(id="hourly", name="Hourly", func=record_run, schedule=Interval(hours=1))
    create_scheduler((hourly,), settings, engine)
    Management(engine, settings, [hourly]).pause("hourly")
    same = ScheduledJob(id="hourly", name="Hourly", func=record_run, schedule=Interval(minutes=60))
    create_scheduler((same,), settings, engine)
    # Compared as data, not as text: the row was not reset, so the pause holds.
    assert rows(engine)["hourly"].paused


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (Cron("61 * * * *"), "cron: '61 * * * *'"),
        (Cron("0 6 * *"), "has 4 fields; expected 5"),
        (Cron("0 6 * * 9"), "day_of_week: '9' is not a weekday"),
        (Interval(), "interval: the period must be positive"),
        (CronFields(hour=25), "cron fields:"),
    ],
)
def test_invalid_schedule_names_the_job_and_the_field(
    settings: Settings, engine: Engine, schedule: Cron | Interval, message: str
) -> None:
    broken = ScheduledJob(id="broken", name="Broken", func=cleanup_old_records, schedule=schedule)
    with pytest.raises(JobDefinitionError) as caught:
        create_scheduler((broken,), settings, engine)
    assert str(caught.value).startswith("job 'broken': ")
    assert message in str(caught.value)
    assert rows(engine) == {}


def test_jobs_removed_from_code_are_removed_from_the_table(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    obsolete = ScheduledJob(
        id="obsolete", name="Obsolete", func=cleanup_old_records, schedule=Interval(hours=1)
    )
    create_scheduler((*JOBS, obsolete), settings, engine)
    assert "obsolete" in rows(engine)

    caplog.set_level(logging.INFO)
    second = create_scheduler(JOBS, settings, engine)
    assert {job.id for job in second.get_jobs()} == {job.id for job in JOBS}
    assert set(rows(engine)) == {job.id for job in JOBS}
    [record] = [r for r in caplog.records if getattr(r, "job_id", None) == "obsolete"]
    assert record.getMessage() == "job removed: no longer defined in code"


def test_a_code_job_with_a_runtime_jobs_id_is_refused(settings: Settings, engine: Engine) -> None:
    create_scheduler((), settings, engine)
    store_runtime_row(engine, "taken", "record_run")
    clash = ScheduledJob(id="taken", name="In code", func=record_run, schedule=Interval(hours=1))
    with pytest.raises(JobDefinitionError, match="job 'taken' is defined in code and was also"):
        create_scheduler((clash,), settings, engine)
    assert rows(engine)["taken"].origin == JobOrigin.RUNTIME


runs: list[str] = []


def record_run() -> None:
    runs.append("ran")


def executions(engine: Engine) -> list[JobExecution]:
    with session_scope(engine) as session:
        return list(session.scalars(select(JobExecution).order_by(JobExecution.scheduled_at)))


async def test_one_time_job_runs_once_across_restarts(settings: Settings, engine: Engine) -> None:
    runs.clear()
    once = ScheduledJob(
        id="once",
        name="Once",
        func=record_run,
        schedule=Once(at=utcnow() + timedelta(milliseconds=300)),
    )
    first = create_scheduler((once,), settings, engine)
    first.start()
    await wait_until(
        lambda: any(ExecutionStatus(r.status).is_final for r in executions(engine)), 10, "the run"
    )
    await stop(first)
    for _ in range(2):
        again = create_scheduler((once,), settings, engine)
        assert again.get_jobs() == []
        again.start()
        await asyncio.sleep(0.3)
        await stop(again)
    assert runs == ["ran"]
    assert [row.status for row in executions(engine)] == [ExecutionStatus.SUCCEEDED]
    assert rows(engine)["once"].next_run_at is None


def test_past_one_time_job_is_not_scheduled(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    past = ScheduledJob(
        id="past",
        name="Past",
        func=record_run,
        schedule=Once(at=utcnow() - timedelta(minutes=5)),
    )
    caplog.set_level(logging.INFO)
    scheduler = create_scheduler((past,), settings, engine)
    assert scheduler.get_jobs() == []
    assert "one-time job not scheduled: its time has passed" in caplog.messages


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timezone": "Mars/Base"}, "timezone: 'Mars/Base' is not an IANA time zone"),
        ({"id": "Bad-Id"}, "id: 'Bad-Id' must be lowercase letters, digits and _"),
        ({"max_instances": 0}, "max_instances: must be at least 1"),
        ({"priority": 101}, "priority: must be from -100 to 100, not 101"),
        ({"timeout": timedelta(0)}, "timeout: must be positive"),
        ({"misfire_grace_time": timedelta(seconds=-1)}, "misfire_grace_time: must be positive"),
        ({"retry": Retry(attempts=0)}, "retry.attempts: must be at least 1"),
        ({"retry": Retry(attempts=2, backoff=Delays([]))}, "retry.backoff: give at least one"),
    ],
)
def test_invalid_options_name_the_job_and_the_field(
    settings: Settings, engine: Engine, changes: dict[str, object], message: str
) -> None:
    fields: dict[str, object] = {
        "id": "broken",
        "name": "Broken",
        "func": cleanup_old_records,
        "schedule": Interval(hours=1),
        **changes,
    }
    with pytest.raises(JobDefinitionError, match=re.escape(message)):
        create_scheduler((ScheduledJob(**fields),), settings, engine)  # type: ignore[arg-type]


def test_duplicate_ids_are_refused(settings: Settings, engine: Engine) -> None:
    twice = ScheduledJob(id="twice", name="Twice", func=record_run, schedule=Interval(hours=1))
    with pytest.raises(JobDefinitionError, match="job 'twice': id: 'twice' is used twice"):
        create_scheduler((twice, twice), settings, engine)


def test_options_reach_the_runtime(settings: Settings, engine: Engine) -> None:
    job = ScheduledJob(
        id="tuned",
        name="Tuned",
        func=record_run,
        schedule=Cron("0 9 * * *"),
        timezone="Asia/Tokyo",
        max_instances=3,
        catch_up=CatchUp.ALL,
        misfire_grace_time=timedelta(minutes=5),
    )
    [registered] = create_scheduler((job,), settings, engine).get_jobs()
    assert describe_trigger(registered.trigger) == 'cron "0 9 * * *" (Asia/Tokyo)'
    # Every due time reaches the claimer, which applies the job's own options.
    assert (registered.coalesce, registered.misfire_grace_time) == (False, None)
    detail = Management(engine, settings, [job]).job("tuned")
    assert (detail.max_instances, detail.catch_up) == (3, CatchUp.ALL)
    assert detail.timezone == "Asia/Tokyo"
    assert job.grace(settings.misfire_grace_time) == timedelta(minutes=5)
    plain = ScheduledJob(id="plain", name="Plain", func=record_run, schedule=Interval(hours=1))
    assert plain.catch_up is CatchUp.LATEST
    assert plain.grace(settings.misfire_grace_time) == settings.misfire_grace_time
