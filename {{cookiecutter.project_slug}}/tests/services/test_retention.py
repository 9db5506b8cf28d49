"""Old heartbeat rows are deleted; recent ones stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select, update

from app.components.scheduler.history import HistoryRecorder
from app.core.db import session_scope, utcnow
from app.core.models import (
    ExecutionStatus,
    JobExecution,
    SchedulerInstance,
    SchedulerState,
    TriggerKind,
)
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
    recorder = HistoryRecorder(engine, "test")
    long_ago = utcnow() - timedelta(days=40)
    old_done = recorder.outcome_without_run(
        "job", "default", long_ago, ExecutionStatus.MISSED, "missed"
    )
    old_running = recorder.started("job", "default", long_ago, 1, TriggerKind.SCHEDULE)
    recent_done = recorder.outcome_without_run(
        "job", "default", utcnow(), ExecutionStatus.SKIPPED, "skipped"
    )
    assert recorder.flush()
    with session_scope(engine) as session:
        session.execute(
            update(JobExecution).where(JobExecution.id == old_done).values(finished_at=long_ago)
        )

    result = cleanup_old_records(engine, retention=timedelta(days=30))

    with session_scope(engine) as session:
        remaining = set(session.scalars(select(JobExecution.id)))
    assert result.executions == 1
    assert remaining == {old_running, recent_done}
    recorder.close()
