"""The project owns its job state: `jobs` replaces APScheduler's pickled store; runs are claims.

Moves a database made by 0001 onto the new tables, keeping pauses, next run times, schedule
overrides and runtime jobs, and applying the pause and resume commands that were waiting for
a scheduler. Planned runs (manual runs, retries) stay pending rows of `job_executions`, which
the next leader runs. The old store's rows are read by their plain `next_run_time` column; the
pickled state is never loaded.

A downgrade restores the old tables with the runtime jobs; pauses, next run times and schedule
overrides are not written back (the old version starts its jobs from the code again).

Revision ID: 0002
Revises: 0001
Created: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLANNED_RUN_MARK = "__run__"


def upgrade() -> None:
    jobs = op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=191), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("function", sa.String(length=191), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("queue", sa.String(length=16), nullable=False),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("code_schedule", sa.Text(), nullable=True),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    revisions = op.create_table(
        "job_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    lease = op.create_table(
        "scheduler_lease",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("scheduler_instances") as batch:
        batch.add_column(
            sa.Column("applied_revision", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("job_executions") as batch:
        batch.add_column(sa.Column("epoch", sa.Integer(), nullable=True))
    # Older history may hold a scheduled time twice (the bug this revision ends); claims made
    # from now on carry an epoch, and only those are unique.
    op.create_index(
        "uq_job_executions_fire",
        "job_executions",
        ["job_id", "scheduled_at"],
        unique=True,
        sqlite_where=sa.text("trigger_kind = 'schedule' AND epoch IS NOT NULL"),
        postgresql_where=sa.text("trigger_kind = 'schedule' AND epoch IS NOT NULL"),
    )
    rows = _rows_from_the_old_tables()
    if rows:
        op.bulk_insert(jobs, rows)
    op.bulk_insert(revisions, [{"id": 1, "revision": 1 if rows else 0}])
    op.bulk_insert(lease, [{"name": "scheduler", "holder": None, "epoch": 0, "acquired_at": None}])
    op.drop_index("ix_apscheduler_jobs_next_run_time", table_name="apscheduler_jobs")
    for table in ("apscheduler_jobs", "schedule_overrides", "runtime_jobs"):
        op.drop_table(table)


def _rows_from_the_old_tables() -> list[dict[str, Any]]:
    """The `jobs` rows that carry over what the old tables knew.

    This one step reads the code's job list: the old tables kept a code-defined job's schedule
    only inside the pickled store, and an override's validity only as rendered text, so the
    schedule a row starts from is the code's own, as the old scheduler would have used it.
    """
    from app.components.scheduler.catalog import code_jobs, first_run
    from app.core.schedule_specs import dump_spec, parse_spec
    from app.core.schedules import ScheduleError, describe_trigger
    from app.core.settings import get_settings

    connection = op.get_bind()
    zone = get_settings().timezone
    now = datetime.now(UTC)
    stored: dict[str, float | None] = {
        job_id: next_run
        for job_id, next_run in connection.execute(
            sa.text("SELECT id, next_run_time FROM apscheduler_jobs")
        )
        if _PLANNED_RUN_MARK not in job_id
    }
    overrides = {
        job_id: (schedule, code_trigger)
        for job_id, schedule, code_trigger in connection.execute(
            sa.text("SELECT job_id, schedule, code_trigger FROM schedule_overrides")
        )
    }
    # APScheduler keeps a paused job with no next run time.
    paused = _paused_by_waiting_commands(
        connection, {job_id: next_run is None for job_id, next_run in stored.items()}
    )
    rows: list[dict[str, Any]] = []

    def next_run(job_id: str, first: datetime | None) -> datetime | None:
        if job_id in stored and stored[job_id] is not None:
            return datetime.fromtimestamp(float(stored[job_id] or 0), UTC).replace(tzinfo=None)
        return first.astimezone(UTC).replace(tzinfo=None) if first else None

    for job in code_jobs():
        if job.id not in stored:
            continue  # never stored: the next leader adds it
        code_spec = dump_spec(job.spec)
        schedule = code_spec
        override = overrides.get(job.id)
        try:
            if override and override[1] == describe_trigger(job.trigger(zone)):
                schedule = dump_spec(parse_spec(override[0]))
        except (ScheduleError, ValueError):
            schedule = code_spec
        rows.append(
            {
                "id": job.id,
                "origin": "code",
                "name": job.name,
                "function": job.function.name,
                "args": "{}",
                "queue": job.queue.value,
                "schedule": schedule,
                "code_schedule": code_spec,
                "paused": paused.get(job.id, False),
                "next_run_at": next_run(job.id, first_run(job, zone, now)),
                "version": 1,
                "updated_at": now.replace(tzinfo=None),
            }
        )
    code_ids = {job.id for job in code_jobs()}
    for job_id, name, function, args, schedule, queue in connection.execute(
        sa.text("SELECT id, name, function, args, schedule, queue FROM runtime_jobs")
    ):
        if job_id in code_ids:
            continue  # the old version ignored it too: a code job has this id
        try:
            spec = parse_spec(schedule)
            first = first_run_of(spec, zone, now)
            stored_schedule = dump_spec(spec)
        except (ScheduleError, ValueError):
            first, stored_schedule = None, schedule
        rows.append(
            {
                "id": job_id,
                "origin": "runtime",
                "name": name,
                "function": function,
                "args": args or "{}",
                "queue": queue,
                "schedule": stored_schedule,
                "code_schedule": None,
                "paused": paused.get(job_id, False),
                "next_run_at": next_run(job_id, first),
                "version": 1,
                "updated_at": now.replace(tzinfo=None),
            }
        )
    return rows


def first_run_of(spec: Any, zone: str, now: datetime) -> datetime | None:
    """When a runtime job that was never stored first runs."""
    from app.components.scheduler.fires import first_fire
    from app.core.schedules import Once, parse_timezone

    schedule = spec.to_schedule()
    if isinstance(schedule, Once) and schedule.at <= now:
        return None
    moment: datetime | None = first_fire(
        schedule.to_trigger(parse_timezone(spec.timezone or zone)), now
    )
    return moment


def _paused_by_waiting_commands(
    connection: sa.Connection, paused: dict[str, bool]
) -> dict[str, bool]:
    """Apply the pause and resume commands no scheduler read; mark every job command applied.

    The other job commands (reschedule, add, delete) wrote their rows when they were sent.
    """
    waiting = connection.execute(
        sa.text(
            "SELECT id, kind, job_id FROM scheduler_commands WHERE status = 'pending' "
            "AND kind IN ('pause', 'resume', 'reschedule', 'add', 'delete') ORDER BY created_at"
        )
    ).all()
    for _, kind, job_id in waiting:
        if kind in ("pause", "resume"):
            paused[job_id] = kind == "pause"
    if waiting:
        connection.execute(
            sa.text(
                "UPDATE scheduler_commands SET status = 'applied', applied_at = :now, "
                "detail = 'applied by the schema upgrade to the jobs table' WHERE id = :id"
            ),
            [
                {"id": command_id, "now": datetime.now(UTC).replace(tzinfo=None)}
                for command_id, _, _ in waiting
            ],
        )
    return paused


def downgrade() -> None:
    connection = op.get_bind()
    runtime = connection.execute(
        sa.text(
            "SELECT id, name, function, args, schedule, queue, updated_at FROM jobs "
            "WHERE origin = 'runtime'"
        )
    ).all()
    runtime_jobs = op.create_table(
        "runtime_jobs",
        sa.Column("id", sa.String(length=191), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("function", sa.String(length=191), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("queue", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "schedule_overrides",
        sa.Column("job_id", sa.String(length=191), nullable=False),
        sa.Column("schedule", sa.Text(), nullable=False),
        sa.Column("code_trigger", sa.Text(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_apscheduler_jobs_next_run_time", "apscheduler_jobs", ["next_run_time"])
    if runtime:
        op.bulk_insert(
            runtime_jobs,
            [
                {
                    "id": job_id,
                    "name": name,
                    "function": function,
                    "args": args,
                    "schedule": schedule,
                    "queue": queue,
                    "created_at": updated_at,
                }
                for job_id, name, function, args, schedule, queue, updated_at in runtime
            ],
        )
    op.drop_index("uq_job_executions_fire", table_name="job_executions")
    with op.batch_alter_table("job_executions") as batch:
        batch.drop_column("epoch")
    with op.batch_alter_table("scheduler_instances") as batch:
        batch.drop_column("applied_revision")
    for table in ("scheduler_lease", "job_revision", "jobs"):
        op.drop_table(table)
