"""The workers' queue: Procrastinate's tables, in the project's PostgreSQL database.

One task carries every run, `run_execution`, with the run's execution id as its only
argument: a worker finds the job and its function by name from the run's row, so no import
path or code ever comes from the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import procrastinate
import psycopg
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from app.components.scheduler.dispatch import Deferral
from app.components.scheduler.history import array_literal
from app.components.worker.pools import worker_pool
from app.core.enums import Queue

TASK_NAME = "run_execution"
QUEUES = tuple(queue.value for queue in Queue)

# Procrastinate's own function, from its schema: it inserts the jobs and returns their ids.
# Each takes its job's priority from the job's row, as it is when the run is queued (a job
# deleted meanwhile: 0).
_DEFER = (
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY("
    "SELECT ROW(t.queue, %s, COALESCE(j.priority, 0), NULL, NULL, "
    "jsonb_build_object('execution_id', t.id), t.run_at)::procrastinate_job_to_defer_v1 "
    "FROM unnest(CAST(%s AS TEXT[]), CAST(%s AS TEXT[]), CAST(%s AS TIMESTAMPTZ[])) "
    "WITH ORDINALITY AS t(id, queue, run_at, position) "
    "LEFT JOIN job_executions e ON e.id = t.id LEFT JOIN jobs j ON j.id = e.job_id "
    "ORDER BY t.position)))"
)
# Each run's row notes its new job, matched by the run the job carries rather than by the
# order of the ids returned.
_NOTE_JOBS = (
    "UPDATE job_executions e SET task_id = j.id FROM procrastinate_jobs j "
    "WHERE j.id = ANY(CAST(%s AS BIGINT[])) AND e.id = j.args->>'execution_id'"
)


# Deletes the job if it waits; asks its worker to stop it if it runs (a notification).
_CANCEL = "SELECT procrastinate_cancel_job_v1(%s, true, true)"


# Taken by a worker whose heartbeat is older than the given seconds, or whose worker row is
# gone (a new worker deletes those of dead ones). SKIP LOCKED: a job a live worker's finish
# holds is not stalled.
_STALLED = (
    "SELECT j.id, j.args->>'execution_id' FROM procrastinate_jobs j "
    "LEFT JOIN procrastinate_workers w ON w.id = j.worker_id "
    "WHERE j.status = 'doing' AND j.task_name = %s "
    "AND (w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => %s)) "
    "FOR UPDATE OF j SKIP LOCKED"
)
_REQUEUE = "SELECT procrastinate_retry_job_v1(%s, now(), NULL, NULL, NULL)"
_DROP = "SELECT procrastinate_finish_job_v1(%s, 'failed', true)"


def conninfo(database_url: str) -> str:
    """The libpq connection string of a SQLAlchemy PostgreSQL URL (its options included)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class WorkerQueue:
    """The scheduler's side: queues claimed runs in the claim's own transaction."""

    def defer(self, connection: Connection, runs: Sequence[Deferral]) -> None:
        """Insert a queue job per run, and note it on the run's row."""
        ids = [run.execution_id for run in runs]
        created = connection.exec_driver_sql(
            _DEFER,
            (
                TASK_NAME,
                array_literal(ids),
                array_literal([run.queue for run in runs]),
                array_literal([run.run_at.isoformat() if run.run_at else None for run in runs]),
            ),
        )
        task_ids = [task_id for (task_id,) in created]
        connection.exec_driver_sql(_NOTE_JOBS, (array_literal(task_ids),))

    def stalled(self, connection: Connection, silent_seconds: float) -> list[tuple[int, str]]:
        """The jobs of workers silent for `silent_seconds`, locked."""
        found = connection.exec_driver_sql(_STALLED, (TASK_NAME, silent_seconds))
        return [(int(task_id), str(execution_id)) for task_id, execution_id in found]

    def requeue(self, connection: Connection, task_id: int) -> None:
        """Put a stalled job back in its queue."""
        connection.exec_driver_sql(_REQUEUE, (task_id,))

    def drop(self, connection: Connection, task_id: int) -> None:
        """Take a stalled job off the queue."""
        connection.exec_driver_sql(_DROP, (task_id,))

    def cancel(self, connection: Connection, task_id: int) -> bool:
        """Take the job off the queue, or ask its worker to stop it."""
        return connection.exec_driver_sql(_CANCEL, (task_id,)).scalar() is not None


async def _autocommit(connection: psycopg.AsyncConnection[Any]) -> None:
    """Each of Procrastinate's queries is one statement (a function call) on a connection taken
    for it alone: in autocommit that is one round trip, not three (BEGIN, query, COMMIT)."""
    await connection.set_autocommit(True)


def procrastinate_app(database_url: str, *, pool_size: int) -> procrastinate.App:
    """A Procrastinate app on the project's database, not yet open."""
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(database_url),
        min_size=1,
        max_size=pool_size,
        pool_factory=worker_pool,
        configure=_autocommit,
    )
    return procrastinate.App(connector=connector)
