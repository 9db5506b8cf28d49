"""The project's own tables (APScheduler keeps its job store in a table of its own)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime


class SchedulerState(StrEnum):
    """What a scheduler process is doing, as its heartbeat says."""

    STANDBY = "standby"  # waiting for another instance to give up the leader lock
    RUNNING = "running"  # holds the lock and runs jobs
    STOPPED = "stopped"  # shut down cleanly


class SchedulerInstance(Base):
    """One row per scheduler process: its heartbeat, read by the API and the CLI."""

    __tablename__ = "scheduler_instances"

    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    state: Mapped[SchedulerState] = mapped_column(String(16))
    job_count: Mapped[int] = mapped_column(Integer, default=0)
