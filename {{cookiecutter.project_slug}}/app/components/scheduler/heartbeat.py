"""The scheduler's heartbeat: a row other processes read to know it is alive."""

from __future__ import annotations

import os
import socket
from datetime import datetime

from sqlalchemy import Engine

from app.core.db import database_now, write_session
from app.core.enums import SchedulerState
from app.core.models import SchedulerInstance


class Heartbeat:
    """Records this process's state and job count under a fresh instance id."""

    def __init__(self, engine: Engine, instance_id: str) -> None:
        self.engine = engine
        self.instance_id = instance_id
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.started_at: datetime | None = None

    def beat(self, state: SchedulerState, job_count: int, applied_revision: int = 0) -> None:
        """Write the current state; readers judge freshness by `last_seen`."""
        # A write session: `merge` reads the row before it writes, and on SQLite a transaction
        # begun as a reader fails at once if another connection commits in between.
        with write_session(self.engine) as session:
            # On PostgreSQL the server's clock, so hosts with skewed clocks still agree.
            now = database_now(session.connection())
            self.started_at = self.started_at or now
            session.merge(
                SchedulerInstance(
                    instance_id=self.instance_id,
                    hostname=self.hostname,
                    pid=self.pid,
                    started_at=self.started_at,
                    last_seen=now,
                    state=state,
                    job_count=job_count,
                    applied_revision=applied_revision,
                )
            )
