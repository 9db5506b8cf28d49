"""The scheduler's job store: served from memory, persisted to the database by a thread.

APScheduler's SQLAlchemy store reads and writes the table on the event loop for every job it
runs, so a slow or unreachable database stalls every job, and an error from a write stops the
scheduler from waking up at all (a known APScheduler 3 failure). Here the scheduler works on
an in-memory copy, loaded from the table at start, and every change is queued for a writer
thread that commits all queued changes in one transaction. While the database is down the
scheduler keeps running its jobs; the writer retries with backoff and catches up.

The trade-off: a crash loses the changes of the last moments (at most one commit's worth), so
a run that happened then may run again after a restart. The history shows both runs.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy import Engine, Table, bindparam, delete, insert

from app.components.scheduler.writer import BatchWriter

logger = logging.getLogger("app.scheduler.store")

_DELETE = None


_Change = tuple[float | None, dict[str, Any]] | None  # None: delete the job
_Batch = dict[str, _Change]


class _TableWriter(BatchWriter):
    """Commits job changes to APScheduler's table; the last change to a job wins."""

    def __init__(self, engine: Engine, table: Table) -> None:
        super().__init__("job-store-writer", logger, "job store")
        self._engine = engine
        self._table = table
        self._changes: _Batch = {}

    def enqueue(self, changes: _Batch) -> None:
        with self._lock:
            self._changes.update(changes)
            self._changed()

    def pending(self) -> int:
        with self._lock:
            return len(self._changes)

    def _take(self) -> _Batch | None:
        if not self._changes:
            return None
        batch, self._changes = self._changes, {}
        return batch

    def _put_back(self, batch: _Batch) -> None:
        # Newer changes to the same job win over the ones that failed.
        self._changes = {**batch, **self._changes}

    def _write(self, batch: _Batch) -> None:
        rows = [
            {
                "id": job_id,
                "next_run_time": change[0],
                "job_state": pickle.dumps(change[1], pickle.HIGHEST_PROTOCOL),
            }
            for job_id, change in batch.items()
            if change is not _DELETE
        ]
        with self._engine.begin() as connection:
            # Delete then insert: an upsert that reads the same on SQLite and PostgreSQL. One
            # statement run for many rows: compiling an IN list of thousands of ids would hold
            # the interpreter lock the event loop needs.
            connection.execute(
                delete(self._table).where(self._table.c.id == bindparam("job_id")),
                [{"job_id": job_id} for job_id in batch],
            )
            if rows:
                connection.execute(insert(self._table), rows)


class WriteBehindJobStore(MemoryJobStore):  # type: ignore[misc]  # APScheduler ships no types
    """A memory job store whose every change is written to the SQL table in the background."""

    def __init__(self, engine: Engine, tablename: str) -> None:
        super().__init__()
        self._table_store = SQLAlchemyJobStore(engine=engine, tablename=tablename)
        self.writer = _TableWriter(engine, self._table_store.jobs_t)

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        # The table store creates the table and restores every job it can import.
        self._table_store.start(scheduler, alias)
        for job in self._table_store.get_all_jobs():
            super().add_job(job)

    def add_job(self, job: Job) -> None:
        super().add_job(job)
        self._queue(job)

    def update_job(self, job: Job) -> None:
        super().update_job(job)
        self._queue(job)

    def remove_job(self, job_id: str) -> None:
        super().remove_job(job_id)
        self.writer.enqueue({job_id: _DELETE})

    def remove_all_jobs(self) -> None:
        job_ids = [job.id for job in self.get_all_jobs()]
        super().remove_all_jobs()
        self.writer.enqueue(dict.fromkeys(job_ids, _DELETE))

    def shutdown(self) -> None:
        self.writer.close()
        super().shutdown()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every change is committed; False if that took longer than `timeout`."""
        return self.writer.flush(timeout)

    def _queue(self, job: Job) -> None:
        # A snapshot: APScheduler changes the job object in place after this call.
        timestamp = datetime_to_utc_timestamp(job.next_run_time)
        self.writer.enqueue({job.id: (timestamp, job.__getstate__())})
