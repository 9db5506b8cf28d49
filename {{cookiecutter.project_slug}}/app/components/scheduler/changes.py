"""The leader's side of job changes: read what changed in `jobs`, apply it, report it.

The API and the CLI change rows and raise the job revision in one transaction. The leader,
woken by NOTIFY on PostgreSQL or by polling the revision on SQLite, reads the version of every
row, reloads the rows whose version differs from the one its timer holds, applies them on the
event loop, and writes the revision it now holds to its instance row. A sender that reads that
revision knows the running scheduler acts on its change.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from app.components.scheduler import metrics
from app.components.scheduler.execution import JobRuntime
from app.core import audit
from app.core.db import utcnow
from app.core.models import Job, JobRevision, SchedulerInstance
from app.core.schedules import ScheduleError

logger = logging.getLogger("app.scheduler")

_APPLY_TIMEOUT_SECONDS = 10.0


class ChangeApplier:
    """Brings the leader's timer to the table's latest revision; called from a thread."""

    def __init__(
        self, engine: Engine, loop: asyncio.AbstractEventLoop, runtime: JobRuntime
    ) -> None:
        self._engine = engine
        self._loop = loop
        self._runtime = runtime
        self.started_at = utcnow()
        # The revision up to which the audit log's entries are marked applied.
        self._settled = 0

    def apply(self) -> int:
        """Apply every change committed since the last call; returns how many jobs changed."""
        runtime = self._runtime
        with self._engine.connect() as connection:
            revision = (
                connection.execute(select(JobRevision.revision).where(JobRevision.id == 1)).scalar()
                or 0
            )
            if revision <= runtime.applied_revision:
                # Changes stored while no scheduler ran were applied when the timer was built.
                self._settle(runtime.applied_revision)
                return 0
            versions = dict(iter(connection.execute(select(Job.id, Job.version))))
        known = dict(runtime.row_versions)
        changed = sorted(
            job_id for job_id, version in versions.items() if known.get(job_id) != version
        )
        removed = sorted(set(known) - set(versions))
        rows: list[Job] = []
        if changed:
            with Session(self._engine, expire_on_commit=False) as session:
                rows = list(session.scalars(select(Job).where(Job.id.in_(changed))))
        future = asyncio.run_coroutine_threadsafe(self._apply(rows, removed), self._loop)
        future.result(timeout=_APPLY_TIMEOUT_SECONDS)
        applied_at = utcnow()
        for row in rows:
            metrics.change_applied(row.updated_at, applied_at, "job", self.started_at)
        runtime.applied_revision = max(runtime.applied_revision, revision)
        with self._engine.begin() as connection:
            connection.execute(
                update(SchedulerInstance)
                .where(SchedulerInstance.instance_id == runtime.instance_id)
                .values(applied_revision=runtime.applied_revision)
            )
        self._settle(runtime.applied_revision)
        return len(rows) + len(removed)

    def _settle(self, revision: int) -> None:
        if revision > self._settled:
            with self._engine.begin() as connection:
                audit.settle_revision(connection, revision)
            self._settled = revision

    async def _apply(self, rows: list[Job], removed: list[str]) -> None:
        runtime = self._runtime
        for row in rows:
            if row.id not in runtime.jobs and not runtime.horizon.covers(row):
                # Not held, and not due within the horizon: read again when it is.
                runtime.row_versions[row.id] = row.version
                continue
            try:
                definition = runtime.definitions.of(row)
            except ScheduleError as error:
                runtime.forget(row.id)
                runtime.row_versions[row.id] = row.version
                logger.error(
                    "job not scheduled: its definition is invalid",
                    extra={"job_id": row.id, "reason": str(error)},
                )
                continue
            runtime.register(definition, row.version, row.next_run_at, row.paused)
            logger.info(
                "job change applied",
                extra={
                    "job_id": row.id,
                    "version": row.version,
                    "paused": row.paused,
                    "next_run_at": row.next_run_at,
                },
            )
        for job_id in removed:
            runtime.forget(job_id)
            # A deleted job's series go with it: deleting and adding jobs does not grow the
            # scrape. (Its pending runs were cancelled by the deletion, in the database.)
            runtime.streaks.succeeded(job_id)
            metrics.forget_job(job_id)
            logger.info("job deleted", extra={"job_id": job_id})
