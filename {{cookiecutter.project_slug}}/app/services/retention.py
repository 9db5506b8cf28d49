"""Record retention: delete rows the service no longer needs."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, delete

from app.core.db import get_engine, utcnow
from app.core.models import SchedulerInstance
from app.core.settings import get_settings


def cleanup_old_records(
    engine: Engine | None = None, retention: timedelta | None = None, now: datetime | None = None
) -> int:
    """Delete heartbeats of scheduler instances unseen for `retention`; returns the count."""
    engine = engine or get_engine()
    retention = retention or timedelta(days=get_settings().record_retention_days)
    cutoff = (now or utcnow()) - retention
    with engine.begin() as connection:
        result = connection.execute(
            delete(SchedulerInstance).where(SchedulerInstance.last_seen < cutoff)
        )
    return result.rowcount
