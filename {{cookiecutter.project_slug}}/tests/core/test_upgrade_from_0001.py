"""A database made by the version before the `jobs` table keeps its job state across the upgrade.

The old tables are filled as that version left them: APScheduler's store (whose pickled state
the upgrade must never load, so here it is not even a pickle), schedule overrides, runtime
jobs, a pause command no scheduler read yet, and a manual run waiting to be run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import Engine, inspect, select, text

from app.components.scheduler.catalog import code_jobs, load_catalog
from app.components.scheduler.main import create_scheduler
from app.core.db import session_scope, utcnow
from app.core.enums import ExecutionStatus, JobOrigin
from app.core.migrations import alembic_config, upgrade
from app.core.models import Job, JobExecution, SchedulerCommand
from app.core.schedule_specs import parse_spec, spec_data
from app.core.schedules import describe_trigger
from app.core.settings import Settings

NOT_A_PICKLE = b"the upgrade reads plain columns only"


def naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def fill_the_old_tables(engine: Engine, now: datetime) -> dict[str, datetime]:
    next_runs = {
        "system_maintenance": now + timedelta(hours=2),
        "added_job": now + timedelta(minutes=7),
    }
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
    with engine.begin() as connection:
        store = [
            ("system_maintenance", next_runs["system_maintenance"].timestamp()),
            ("cleanup_old_records", None),  # paused
            ("added_job", next_runs["added_job"].timestamp()),
            ("system_maintenance__run__0123456789abcdef", now.timestamp()),
        ]
        for job_id, next_run in store:
            connection.execute(
                text("INSERT INTO apscheduler_jobs VALUES (:id, :next_run, :state)"),
                {"id": job_id, "next_run": next_run, "state": NOT_A_PICKLE},
            )
        connection.execute(
            text("INSERT INTO schedule_overrides VALUES (:id, :schedule, :code, :at)"),
            {
                "id": "system_maintenance",
                "schedule": '{"kind": "interval", "minutes": 30.0}',
                "code": "every 6h",
                "at": naive(now),
            },
        )
        connection.execute(
            text("INSERT INTO runtime_jobs VALUES (:id, :name, :fn, :args, :schedule, :q, :at)"),
            {
                "id": "added_job",
                "name": "Added at runtime",
                "fn": "cleanup_old_records",
                "args": "{}",
                "schedule": '{"kind": "interval", "minutes": 10.0}',
                "q": "low",
                "at": naive(now),
            },
        )
        connection.execute(
            text(
                "INSERT INTO scheduler_commands (id, kind, job_id, payload, status, created_at) "
                "VALUES ('c1', 'pause', 'added_job', '{}', 'pending', :at)"
            ),
            {"at": naive(now)},
        )
        connection.execute(
            text(
                "INSERT INTO job_executions (id, job_id, queue, scheduled_at, status, attempt, "
                "trigger_kind, instance_id) VALUES ('0123456789abcdef', 'system_maintenance', "
                "'low', :at, 'pending', 1, 'manual', '')"
            ),
            {"at": naive(now)},
        )
    return next_runs


def test_upgrade_keeps_pauses_overrides_runtime_jobs_and_next_runs(
    fresh_engine: Engine, settings: Settings
) -> None:
    now = utcnow().replace(microsecond=0)
    next_runs = fill_the_old_tables(fresh_engine, now)

    assert upgrade(fresh_engine)[0] == "0001"

    tables = set(inspect(fresh_engine).get_table_names())
    assert not tables & {"apscheduler_jobs", "runtime_jobs", "schedule_overrides"}
    with session_scope(fresh_engine) as session:
        rows = {row.id: row for row in session.scalars(select(Job))}
        command_status = session.get_one(SchedulerCommand, "c1").status
        planned = session.get_one(JobExecution, "0123456789abcdef").status
    assert set(rows) == {"system_maintenance", "cleanup_old_records", "added_job"}

    kept = rows["system_maintenance"]
    assert (kept.origin, kept.paused) == (JobOrigin.CODE, False)
    assert spec_data(parse_spec(kept.schedule)) == {"kind": "interval", "minutes": 30.0}
    assert spec_data(parse_spec(kept.code_schedule or "")) == {
        "kind": "interval",
        "seconds": 21600.0,
    }
    assert kept.next_run_at == next_runs["system_maintenance"]

    assert rows["cleanup_old_records"].paused

    added = rows["added_job"]
    assert (added.origin, added.function, added.queue) == (
        JobOrigin.RUNTIME,
        "cleanup_old_records",
        "low",
    )
    # The pause sent while no scheduler ran took effect.
    assert added.paused
    assert command_status == "applied"
    assert planned == ExecutionStatus.PENDING

    scheduler = create_scheduler(settings=settings, engine=fresh_engine)
    timer = {job.id: job for job in scheduler.get_jobs()}
    assert describe_trigger(timer["system_maintenance"].trigger) == "every 30m"
    assert timer["system_maintenance"].next_run_time == next_runs["system_maintenance"]
    assert timer["cleanup_old_records"].next_run_time is None
    # A paused runtime job waits in its row, not in the timer, with its schedule kept.
    assert "added_job" not in timer
    with session_scope(fresh_engine) as session:
        added_job = load_catalog(session, code_jobs()).jobs["added_job"]
    assert describe_trigger(added_job.trigger(settings.timezone)) == "every 10m"


def test_an_override_made_for_an_older_code_schedule_is_dropped(
    fresh_engine: Engine, settings: Settings
) -> None:
    now = utcnow().replace(microsecond=0)
    fill_the_old_tables(fresh_engine, now)
    with fresh_engine.begin() as connection:
        connection.execute(text("UPDATE schedule_overrides SET code_trigger = 'every 5h'"))
    upgrade(fresh_engine)
    with session_scope(fresh_engine) as session:
        row = session.get_one(Job, "system_maintenance")
    assert row.schedule == row.code_schedule
