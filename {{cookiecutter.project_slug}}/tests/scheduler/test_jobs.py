"""`create_scheduler()` registers exactly the code-defined jobs, and restarts keep their state."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import timedelta

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED
from sqlalchemy import Engine

from app.components.scheduler import jobs as job_list
from app.components.scheduler.definition import Delays, Retry, ScheduledJob
from app.components.scheduler.jobs import JOBS
from app.components.scheduler.main import (
    JobDefinitionError,
    create_scheduler,
    remove_unregistered_jobs,
)
from app.core.db import utcnow
from app.core.job_store import read_stored_jobs
from app.core.schedules import Cron, Interval, Once, describe_trigger
from app.core.settings import Settings
from app.services.retention import cleanup_old_records
from tests.helpers import stop


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
    scheduler = create_scheduler(settings, engine)
    registered = {job.id: describe_trigger(job.trigger) for job in scheduler.get_jobs()}
    assert registered == expected_triggers(settings.timezone)
    assert {job.id for job in JOBS} == set(registered)


def test_every_job_has_a_readable_name(settings: Settings, engine: Engine) -> None:
    for job in create_scheduler(settings, engine).get_jobs():
        assert job.name
        assert job.name != job.id


async def test_jobs_are_stored_with_next_run_times(settings: Settings, engine: Engine) -> None:
    scheduler = create_scheduler(settings, engine)
    scheduler.start(paused=True)
    try:
        jobs = scheduler.get_jobs()
        assert {job.id for job in jobs} == set(expected_triggers(settings.timezone))
        assert all(job.next_run_time is not None for job in jobs)
    finally:
        await stop(scheduler)


async def test_restart_keeps_next_run_times_and_pauses(settings: Settings, engine: Engine) -> None:
    first = create_scheduler(settings, engine)
    first.start(paused=True)
    first.pause_job("cleanup_old_records")
    before = {job.id: job.next_run_time for job in first.get_jobs()}
    await stop(first)
    await asyncio.sleep(0.05)

    second = create_scheduler(settings, engine)
    second.start(paused=True)
    try:
        after = {job.id: job.next_run_time for job in second.get_jobs()}
    finally:
        await stop(second)
    assert before["cleanup_old_records"] is None
    assert after == before


async def test_changed_schedule_replaces_the_stored_job(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = create_scheduler(settings, engine)
    first.start(paused=True)
    first.pause_job("cleanup_old_records")
    await stop(first)

    changed = ScheduledJob(
        id="cleanup_old_records",
        name="Prune old scheduler records",
        func=cleanup_old_records,
        schedule=Interval(minutes=5),
    )
    monkeypatch.setattr(job_list, "JOBS", (changed,))
    second = create_scheduler(settings, engine)
    second.start(paused=True)
    try:
        job = second.get_job("cleanup_old_records")
    finally:
        await stop(second)
    assert job is not None
    assert describe_trigger(job.trigger) == "every 5m"
    # The pause belonged to the old definition; the new schedule starts fresh.
    assert job.next_run_time is not None


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (Cron("61 * * * *"), "cron: '61 * * * *'"),
        (Cron("0 6 * *"), "has 4 fields; expected 5"),
        (Cron("0 6 * * 9"), "day_of_week: '9' is not a weekday"),
        (Interval(), "interval: the period must be positive"),
    ],
)
def test_invalid_schedule_names_the_job_and_the_field(
    settings: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    schedule: Cron | Interval,
    message: str,
) -> None:
    broken = ScheduledJob(id="broken", name="Broken", func=cleanup_old_records, schedule=schedule)
    monkeypatch.setattr(job_list, "JOBS", (broken,))
    with pytest.raises(JobDefinitionError) as caught:
        create_scheduler(settings, engine)
    assert str(caught.value).startswith("job 'broken': ")
    assert message in str(caught.value)


async def test_jobs_removed_from_code_are_removed_from_the_store(
    settings: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    obsolete = ScheduledJob(
        id="obsolete", name="Obsolete", func=cleanup_old_records, schedule=Interval(hours=1)
    )
    monkeypatch.setattr(job_list, "JOBS", (*JOBS, obsolete))
    first = create_scheduler(settings, engine)
    first.start(paused=True)
    await stop(first)

    monkeypatch.setattr(job_list, "JOBS", JOBS)
    caplog.set_level(logging.INFO)
    second = create_scheduler(settings, engine)
    assert "obsolete" in {job.id for job in read_stored_jobs(engine)}
    assert remove_unregistered_jobs(second, engine) == ["obsolete"]
    second.start(paused=True)
    try:
        ids = {job.id for job in second.get_jobs()}
    finally:
        await stop(second)
    assert ids == {job.id for job in JOBS}
    [record] = [r for r in caplog.records if getattr(r, "job_id", None) == "obsolete"]
    assert record.getMessage() == "job removed from the store: no longer defined"


ran = asyncio.Event()
runs: list[str] = []


def record_run() -> None:
    runs.append("ran")


async def test_one_time_job_runs_once_across_restarts(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs.clear()
    once = ScheduledJob(
        id="once",
        name="Once",
        func=record_run,
        schedule=Once(at=utcnow() + timedelta(milliseconds=500)),
    )
    monkeypatch.setattr(job_list, "JOBS", (once,))
    first = create_scheduler(settings, engine)
    finished = asyncio.Event()
    first.add_listener(lambda _event: finished.set(), EVENT_JOB_EXECUTED)
    first.start()
    await asyncio.wait_for(finished.wait(), timeout=10)
    await stop(first)
    for _ in range(2):
        # Past due and within the misfire grace time: a naive re-add would run at once.
        again = create_scheduler(settings, engine)
        assert again.get_jobs() == []
        again.start()
        await asyncio.sleep(0.3)
        await stop(again)
    assert runs == ["ran"]


async def test_past_one_time_job_is_not_scheduled(
    settings: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    past = ScheduledJob(
        id="past",
        name="Past",
        func=record_run,
        schedule=Once(at=utcnow() - timedelta(minutes=5)),
    )
    monkeypatch.setattr(job_list, "JOBS", (past,))
    caplog.set_level(logging.INFO)
    scheduler = create_scheduler(settings, engine)
    assert scheduler.get_jobs() == []
    assert "one-time job not scheduled: its time has passed" in caplog.messages


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timezone": "Mars/Base"}, "timezone: 'Mars/Base' is not an IANA time zone"),
        ({"id": "Bad-Id"}, "id: 'Bad-Id' must be lowercase letters, digits and _"),
        ({"max_instances": 0}, "max_instances: must be at least 1"),
        ({"timeout": timedelta(0)}, "timeout: must be positive"),
        ({"misfire_grace_time": timedelta(seconds=-1)}, "misfire_grace_time: must be positive"),
        ({"retry": Retry(attempts=0)}, "retry.attempts: must be at least 1"),
        ({"retry": Retry(attempts=2, backoff=Delays([]))}, "retry.backoff: give at least one"),
    ],
)
def test_invalid_options_name_the_job_and_the_field(
    settings: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    changes: dict[str, object],
    message: str,
) -> None:
    fields: dict[str, object] = {
        "id": "broken",
        "name": "Broken",
        "func": cleanup_old_records,
        "schedule": Interval(hours=1),
        **changes,
    }
    monkeypatch.setattr(job_list, "JOBS", (ScheduledJob(**fields),))  # type: ignore[arg-type]
    with pytest.raises(JobDefinitionError, match=re.escape(message)):
        create_scheduler(settings, engine)


def test_duplicate_ids_are_refused(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    twice = ScheduledJob(id="twice", name="Twice", func=record_run, schedule=Interval(hours=1))
    monkeypatch.setattr(job_list, "JOBS", (twice, twice))
    with pytest.raises(JobDefinitionError, match="job 'twice': id: 'twice' is used twice"):
        create_scheduler(settings, engine)


def test_options_reach_apscheduler(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = ScheduledJob(
        id="tuned",
        name="Tuned",
        func=record_run,
        schedule=Cron("0 9 * * *"),
        timezone="Asia/Tokyo",
        max_instances=3,
        coalesce=False,
        misfire_grace_time=timedelta(minutes=5),
    )
    monkeypatch.setattr(job_list, "JOBS", (job,))
    [registered] = create_scheduler(settings, engine).get_jobs()
    assert describe_trigger(registered.trigger) == 'cron "0 9 * * *" (Asia/Tokyo)'
    assert (registered.max_instances, registered.coalesce) == (3, False)
    assert registered.misfire_grace_time == 300
    default = ScheduledJob(id="plain", name="Plain", func=record_run, schedule=Interval(hours=1))
    monkeypatch.setattr(job_list, "JOBS", (default,))
    [plain] = create_scheduler(settings, engine).get_jobs()
    assert plain.misfire_grace_time == settings.misfire_grace_time_seconds
    assert (plain.max_instances, plain.coalesce) == (1, True)
