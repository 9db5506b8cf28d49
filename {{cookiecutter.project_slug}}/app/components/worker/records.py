"""A worker's writes of runs' starts and ends, in batches (see `batches`).

Both go through the database's `worker_start_runs` and `worker_end_runs` (migrations 0010, 0011) on
a connection pool of their own, in autocommit: one call is one transaction, a batch's.
An end that earns a retry is not batched: its retry's row and queue job are written in the
end's own transaction (`WorkerRuns.finish_with_retry`), through `end_call` below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import namedtuple_row

from app.components.scheduler.history import end_fields
from app.components.worker.batches import GroupCommit
from app.components.worker.pools import worker_pool
from app.core.db import utcnow
from app.core.enums import ExecutionStatus

# A batch the database chose to undo to break a deadlock (with the leader recovering runs,
# say) is written again, this many times in all.
_DEADLOCK_ATTEMPTS = 3
_START = "SELECT * FROM worker_start_runs(%s::text[], %s::text, %s::timestamp)"
_END = (
    "SELECT * FROM worker_end_runs(%s::text[], %s::text[], %s::text[], %s::timestamp[], "
    "%s::float8[], %s::text[], %s::text[], %s::text[], %s::text)"
)


@dataclass(frozen=True)
class End:
    """A run's end to write, only while the run is still `from_status`."""

    execution_id: str
    # The job's id orders a batch, so that its jobs' rows are locked in one order.
    job_id: str
    from_status: ExecutionStatus
    status: ExecutionStatus
    duration_ms: float = 0.0
    error: BaseException | None = None
    trace: str | None = None
    reason: str | None = None


def end_call(ends: Sequence[End], worker_id: str) -> tuple[str, tuple[Any, ...]]:
    """The statement writing `ends`, and its parameters; it returns, per end, the execution
    id and the job's failure streak after it (NULL when the end was not written)."""
    rows = [
        end_fields(end.status, end.duration_ms, end.error, end.trace, end.reason) for end in ends
    ]
    return _END, (
        [end.execution_id for end in ends],
        [end.from_status.value for end in ends],
        [row["status"].value for row in rows],
        [_stored(row["finished_at"]) for row in rows],
        [row["duration_ms"] for row in rows],
        [row["error_type"] for row in rows],
        [row["error_message"] for row in rows],
        [row["traceback"] for row in rows],
        worker_id,
    )


class RunRecords:
    """Starts and ends of this worker's runs, each written with those ready beside it."""

    def __init__(self, conninfo: str, worker_id: str) -> None:
        self.worker_id = worker_id
        # One batch of starts and one of ends in flight at a time: two connections.
        self.pool = worker_pool(
            conninfo=conninfo,
            min_size=1,
            max_size=2,
            kwargs={"autocommit": True, "row_factory": namedtuple_row},
        )
        self._starts: GroupCommit[str, Any] = GroupCommit(self._start_batch)
        self._ends: GroupCommit[End, int | None] = GroupCommit(self._end_batch)

    async def open(self) -> None:
        await self.pool.open()

    async def close(self) -> None:
        await self.pool.close()

    async def start(self, execution_id: str) -> Any:
        """The run's start: a row with its `outcome` and, when started, its job's row."""
        return await self._starts.submit(execution_id)

    async def end(self, end: End) -> int | None:
        """Write the end; the job's failure streak after it, None if it was not written."""
        return await self._ends.submit(end)

    async def _start_batch(self, execution_ids: Sequence[str]) -> Sequence[Any]:
        rows = await self._call(_START, (list(execution_ids), self.worker_id, _stored(utcnow())))
        by_id = {row.execution_id: row for row in rows}
        return [by_id[execution_id] for execution_id in execution_ids]

    async def _end_batch(self, ends: Sequence[End]) -> Sequence[int | None]:
        ordered = sorted(ends, key=lambda end: end.job_id)
        rows = await self._call(*end_call(ordered, self.worker_id))
        streaks = {row.execution_id: row.streak for row in rows}
        return [streaks[end.execution_id] for end in ends]

    async def _call(self, statement: str, parameters: tuple[Any, ...]) -> list[Any]:
        for attempt in range(_DEADLOCK_ATTEMPTS):
            try:
                async with self.pool.connection() as connection:
                    cursor = await connection.execute(statement, parameters)
                    return await cursor.fetchall()
            except psycopg.errors.DeadlockDetected:
                # The database undid the whole batch: writing it again is safe.
                if attempt + 1 == _DEADLOCK_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")


def _stored(moment: datetime) -> datetime:
    """A time as the history's columns keep it: UTC, without a zone (see `UTCDateTime`)."""
    return moment.astimezone(UTC).replace(tzinfo=None)
