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
import threading
import time
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy import Engine, bindparam, delete, insert
from sqlalchemy.exc import SQLAlchemyError

logger = logging.getLogger("app.scheduler.store")

_RETRY_CAP_SECONDS = 30.0
_GATHER_SECONDS = 0.02
_DELETE = None


class WriteBehindJobStore(MemoryJobStore):  # type: ignore[misc]  # APScheduler ships no types
    """A memory job store whose every change is written to the SQL table in the background."""

    def __init__(self, engine: Engine, tablename: str) -> None:
        super().__init__()
        self._table_store = SQLAlchemyJobStore(engine=engine, tablename=tablename)
        self._engine = engine
        self._lock = threading.Lock()
        self._changes: dict[str, tuple[float | None, dict[str, Any]] | None] = {}
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.healthy = True

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
        self._queue_delete([job_id])

    def remove_all_jobs(self) -> None:
        job_ids = [job.id for job in self.get_all_jobs()]
        super().remove_all_jobs()
        self._queue_delete(job_ids)

    def shutdown(self) -> None:
        self.close()
        super().shutdown()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every change is committed; False if that took longer than `timeout`."""
        self._wake.set()
        return self._idle.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued (waiting up to `timeout`), then stop the writer."""
        flushed = self.flush(timeout)
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        if not flushed:
            with self._lock:
                pending = len(self._changes)
            logger.error("job store changes not written at shutdown", extra={"pending": pending})

    def _queue(self, job: Job) -> None:
        # A snapshot: APScheduler changes the job object in place after this call.
        timestamp = datetime_to_utc_timestamp(job.next_run_time)
        self._enqueue({job.id: (timestamp, job.__getstate__())})

    def _queue_delete(self, job_ids: list[str]) -> None:
        self._enqueue(dict.fromkeys(job_ids, _DELETE))

    def _enqueue(self, changes: dict[str, tuple[float | None, dict[str, Any]] | None]) -> None:
        with self._lock:
            self._changes.update(changes)
            self._idle.clear()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._write_forever, name="job-store-writer", daemon=True
            )
            self._thread.start()
        self._wake.set()

    def _write(self, changes: dict[str, tuple[float | None, dict[str, Any]] | None]) -> None:
        table = self._table_store.jobs_t
        rows = [
            {
                "id": job_id,
                "next_run_time": change[0],
                "job_state": pickle.dumps(change[1], pickle.HIGHEST_PROTOCOL),
            }
            for job_id, change in changes.items()
            if change is not _DELETE
        ]
        with self._engine.begin() as connection:
            # Delete then insert: an upsert that reads the same on SQLite and PostgreSQL. One
            # statement run for many rows: compiling an IN list of thousands of ids would hold
            # the interpreter lock the event loop needs.
            connection.execute(
                delete(table).where(table.c.id == bindparam("job_id")),
                [{"job_id": job_id} for job_id in changes],
            )
            if rows:
                connection.execute(insert(table), rows)

    def _write_forever(self) -> None:
        delay = 0.0
        while True:
            self._wake.wait(timeout=1.0)
            # Let a burst gather: one commit per window instead of one per change keeps the
            # writer from competing with the event loop for the interpreter.
            time.sleep(_GATHER_SECONDS)
            self._wake.clear()
            with self._lock:
                changes, self._changes = self._changes, {}
            if not changes:
                self._idle.set()
                if self._closing:
                    return
                continue
            try:
                self._write(changes)
            except SQLAlchemyError as error:
                with self._lock:
                    # Newer changes to the same job win over the ones that failed.
                    self._changes = {**changes, **self._changes}
                delay = min(max(delay * 2, 0.5), _RETRY_CAP_SECONDS)
                if self.healthy:
                    logger.error(
                        "cannot write the job store; jobs keep running from memory, retrying",
                        extra={"error": str(error).splitlines()[0], "retry_in_seconds": delay},
                    )
                self.healthy = False
                if self._closing:
                    return
                time.sleep(delay)
                self._wake.set()
                continue
            if not self.healthy:
                logger.info("job store written again after an outage")
            self.healthy, delay = True, 0.0
            self._wake.set()
