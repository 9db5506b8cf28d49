"""Old heartbeats, finished runs and answered commands are deleted; the rest stays."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, insert, select

from app.components.scheduler.history import execution_row
from app.core.db import session_scope, utcnow
from app.core.enums import CommandStatus, ExecutionStatus, SchedulerState, TriggerKind
from app.core.models import JobExecution, SchedulerCommand, SchedulerInstance
from app.services.retention import cleanup_old_records
from tests.helpers import write_heartbeat


def test_deletes_only_rows_older_than_the_retention(engine: Engine) -> None:
    old = write_heartbeat(engine, state=SchedulerState.STOPPED, age_seconds=40 * 86400)
    recent = write_heartbeat(engine, state=SchedulerState.STOPPED, age_seconds=86400)
    removed = cleanup_old_records(engine, retention=timedelta(days=30)).heartbeats
    with session_scope(engine) as session:
        remaining = set(session.scalars(select(SchedulerInstance.instance_id)))
    assert removed == 1
    assert remaining == {recent.instance_id}
    assert old.instance_id not in remaining


def test_default_retention_comes_from_settings(engine: Engine) -> None:
    write_heartbeat(engine, age_seconds=31 * 86400)
    write_heartbeat(engine, age_seconds=29 * 86400)
    assert cleanup_old_records().heartbeats == 1


def test_deletes_old_finished_executions_but_never_a_running_one(engine: Engine) -> None:
    long_ago = utcnow() - timedelta(days=40)
    rows = [
        execution_row("job", "default", long_ago, ExecutionStatus.MISSED, reason="missed"),
        execution_row("job", "default", long_ago + timedelta(seconds=1), ExecutionStatus.RUNNING),
        execution_row(
            "job", "default", long_ago, ExecutionStatus.PENDING, trigger_kind=TriggerKind.RETRY
        ),
        execution_row("job", "default", utcnow(), ExecutionStatus.SKIPPED, reason="skipped"),
    ]
    _, old_running, old_pending, recent_done = (str(row["id"]) for row in rows)
    rows[0]["finished_at"] = long_ago
    with session_scope(engine) as session:
        session.execute(insert(JobExecution), rows)

    result = cleanup_old_records(engine, retention=timedelta(days=30))

    with session_scope(engine) as session:
        remaining = set(session.scalars(select(JobExecution.id)))
    assert result.executions == 1
    assert remaining == {old_running, old_pending, recent_done}


def test_deletes_old_answered_commands_but_never_a_waiting_one(engine: Engine) -> None:
    long_ago = utcnow() - timedelta(days=40)
    with session_scope(engine) as session:
        for command_id, status, created_at in [
            ("old_applied", CommandStatus.APPLIED, long_ago),
            ("old_waiting", CommandStatus.PENDING, long_ago),
            ("new_applied", CommandStatus.APPLIED, utcnow()),
        ]:
            session.add(
                SchedulerCommand(
                    id=command_id,
                    kind="pause",
                    job_id="job",
                    payload="{}",
                    status=status,
                    created_at=created_at,
                )
            )
    assert cleanup_old_records(engine, retention=timedelta(days=30)).commands == 1
    with session_scope(engine) as session:
        remaining = set(session.scalars(select(SchedulerCommand.id)))
    assert remaining == {"old_waiting", "new_applied"}
