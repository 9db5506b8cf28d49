"""Old heartbeat rows are deleted; recent ones stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select

from app.core.db import session_scope
from app.core.models import SchedulerInstance, SchedulerState
from app.services.retention import cleanup_old_records
from tests.helpers import write_heartbeat


def test_deletes_only_rows_older_than_the_retention(engine: Engine) -> None:
    old = write_heartbeat(engine, state=SchedulerState.STOPPED, age_seconds=40 * 86400)
    recent = write_heartbeat(engine, state=SchedulerState.STOPPED, age_seconds=86400)
    removed = cleanup_old_records(engine, retention=timedelta(days=30))
    with session_scope(engine) as session:
        remaining = set(session.scalars(select(SchedulerInstance.instance_id)))
    assert removed == 1
    assert remaining == {recent.instance_id}
    assert old.instance_id not in remaining


def test_default_retention_comes_from_settings(engine: Engine) -> None:
    write_heartbeat(engine, age_seconds=31 * 86400)
    write_heartbeat(engine, age_seconds=29 * 86400)
    assert cleanup_old_records() == 1
