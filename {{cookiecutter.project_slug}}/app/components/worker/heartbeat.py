"""A worker process's heartbeat: its row in `worker_processes`, which the others read.

Written on the database's clock (PostgreSQL's), so hosts with skewed clocks still agree on
how old it is. While the database is away nothing is written: the row ages, and the health
check shows the worker down until it writes again.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime

from sqlalchemy import Engine

from app.core.db import database_now, write_session
from app.core.enums import WorkerState
from app.core.models import WorkerProcess


class WorkerHeartbeat:
    """Records this worker's state, queues and load under its worker id."""

    def __init__(self, engine: Engine, worker_id: str, concurrency: dict[str, int]) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.concurrency = json.dumps(concurrency)
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.started_at: datetime | None = None

    def beat(self, state: WorkerState, running: int) -> None:
        """Write the current state and the runs in progress."""
        with write_session(self.engine) as session:
            now = database_now(session.connection())
            self.started_at = self.started_at or now
            session.merge(
                WorkerProcess(
                    worker_id=self.worker_id,
                    hostname=self.hostname,
                    pid=self.pid,
                    started_at=self.started_at,
                    last_seen=now,
                    state=state,
                    concurrency=self.concurrency,
                    running=running,
                )
            )
