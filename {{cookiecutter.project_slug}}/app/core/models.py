"""The project's own tables (APScheduler keeps its job store in a table of its own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime


class SchedulerInstance(Base):
    """One row per scheduler process: its heartbeat, read by the API and the CLI."""

    __tablename__ = "scheduler_instances"

    instance_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    # "running" while the process beats; "stopped" after a clean shutdown.
    state: Mapped[str] = mapped_column(String(16))
    job_count: Mapped[int] = mapped_column(Integer, default=0)
