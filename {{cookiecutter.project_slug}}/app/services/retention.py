"""Record retention: delete history, heartbeats, answered commands and audit entries no
longer needed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete

from app.components.scheduler.history import prune
from app.core.db import get_engine, utcnow
from app.core.enums import CommandStatus
from app.core.models import AuditEntry, SchedulerCommand, SchedulerInstance
from app.core.settings import get_settings


@dataclass(frozen=True)
class RetentionResult:
    """How many rows went."""

    executions: int
    heartbeats: int
    commands: int
    audit_entries: int


def cleanup_old_records(
    engine: Engine | None = None, retention: timedelta | None = None, now: datetime | None = None
) -> RetentionResult:
    """Delete finished executions, heartbeats, answered commands and audit entries older than
    `retention`.

    A run pending or in progress is kept whatever its age: it is the record of what is
    happening, and so is a command no scheduler has read yet.
    """
    engine = engine or get_engine()
    retention = retention or timedelta(days=get_settings().record_retention_days)
    cutoff = (now or utcnow()) - retention
    with engine.begin() as connection:
        executions = prune(connection, cutoff)
        heartbeats = connection.execute(
            delete(SchedulerInstance).where(SchedulerInstance.last_seen < cutoff)
        )
        commands = connection.execute(
            delete(SchedulerCommand).where(
                SchedulerCommand.status != CommandStatus.PENDING,
                SchedulerCommand.created_at < cutoff,
            )
        )
        audit_entries = connection.execute(delete(AuditEntry).where(AuditEntry.at < cutoff))
    return RetentionResult(
        executions=executions,
        heartbeats=heartbeats.rowcount,
        commands=commands.rowcount,
        audit_entries=audit_entries.rowcount,
    )
