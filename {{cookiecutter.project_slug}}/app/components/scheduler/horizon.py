"""Which jobs the leader's timer holds: the code's, and the runtime jobs due within its horizon.

Runtime jobs can number hundreds of thousands, most of them due days or months away. The
leader holds in memory only those due before the horizon's end (`TIMER_HORIZON_SECONDS` ahead),
and those it is running or about to run, so its memory grows with the jobs due soon, not with
every job stored. A tenth of the horizon at a time (a minute at most), it moves the horizon on:
the rows that came within it are read and given to the timer, and the runtime jobs that went
quiet (a one-off job that ran, a daily job whose next run is beyond the horizon again) are let
go. A job let go loses nothing: its row keeps its next run time, written by the claim of its
last run, and the row is read again when that time comes within the horizon.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, cast

from sqlalchemy import ColumnElement, Connection, Engine, and_, false, or_, select
from sqlalchemy.exc import SQLAlchemyError

from app.core.db import utcnow
from app.core.enums import JobOrigin
from app.core.models import Job
from app.core.text import first_line

if TYPE_CHECKING:
    from app.components.scheduler.catalog import JobRecord
    from app.components.scheduler.execution import JobRuntime

logger = logging.getLogger("app.scheduler")

_MAX_MOVE_SECONDS = 60.0
_READ_BATCH = 500
# Rows given to the timer, or jobs looked at, between two turns of the event loop: thousands
# coming within the horizon at once must not hold up the runs falling due meanwhile.
_STEP = 100


@dataclass
class Horizon:
    """How far ahead the timer holds runtime jobs, and which of them may be let go."""

    seconds: float
    end: datetime = field(default_factory=utcnow)
    # Runtime jobs that fired or were loaded, by id, with when: each may have gone quiet.
    candidates: dict[str, float] = field(default_factory=dict)
    # Rows whose definition is invalid, by id, with the version found so: reported once.
    invalid: dict[str, int] = field(default_factory=dict)
    # When the last pass letting jobs go began (monotonic clock).
    _last_pass: float = 0.0

    @property
    def move_every_seconds(self) -> float:
        """How often the horizon moves on: a tenth of it, a minute at most."""
        return min(self.seconds / 10, _MAX_MOVE_SECONDS)

    def advance(self) -> datetime:
        """Move the end to the horizon's length from now; returns it."""
        self.end = utcnow() + timedelta(seconds=self.seconds)
        return self.end

    def covers(self, row: JobRecord) -> bool:
        """Whether the timer holds a row's job: code-defined, or active and due by the end."""
        return row.origin == JobOrigin.CODE or self.due_within(row.next_run_at, row.paused)

    def due_within(self, next_run_at: datetime | None, paused: bool) -> bool:
        """Whether a job with this next run falls due before the end."""
        return not paused and next_run_at is not None and next_run_at <= self.end

    def covered(self) -> ColumnElement[bool]:
        """`covers` as a condition on `jobs`."""
        return or_(Job.origin == JobOrigin.CODE, self._runtime_due())

    def _runtime_due(self) -> ColumnElement[bool]:
        return and_(
            Job.origin == JobOrigin.RUNTIME,
            Job.paused == false(),
            Job.next_run_at.is_not(None),
            Job.next_run_at <= self.end,
        )

    def may_go_quiet(self, job_id: str) -> None:
        """Note a runtime job that fired, or is held but not due: let go once it is quiet."""
        self.candidates[job_id] = time.monotonic()

    async def keep(self, runtime: JobRuntime) -> None:
        """Move the horizon on and let quiet jobs go, until cancelled."""
        failing = False
        while True:
            await asyncio.sleep(self.move_every_seconds)
            try:
                loaded = await self.move_on(runtime)
            except Exception as error:
                # Whatever it was, the jobs held keep firing; the next move reads again.
                if not isinstance(error, SQLAlchemyError):
                    logger.exception("moving the horizon on failed; retrying")
                elif not failing:
                    logger.error(
                        "cannot read the jobs coming within the horizon; retrying",
                        extra={"error": first_line(error)},
                    )
                failing = True
                continue
            if failing:
                logger.info("jobs coming within the horizon read again")
            failing = False
            let_go = await self.let_go(runtime)
            if loaded or let_go:
                logger.debug("horizon moved", extra={"loaded": loaded, "let_go": let_go})

    async def move_on(self, runtime: JobRuntime) -> int:
        """Advance the end, and give the timer the rows that came within it; returns how many.

        The end moves first: a change applied meanwhile is judged against the new end, and
        a row read here that a newer change has overtaken is left to that change.
        """
        self.advance()
        held = set(runtime.jobs)
        rows = await asyncio.to_thread(self._read, runtime.engine, held)
        taken = 0
        for index, row in enumerate(rows, 1):
            # Taking checks again what the turns of the loop in between changed.
            taken += runtime.take(row) is not None
            if index % _STEP == 0:
                await asyncio.sleep(0)
        return taken

    def _read(self, engine: Engine, held: set[str]) -> list[JobRecord]:
        with engine.connect() as connection:
            due = connection.execute(select(Job.id, Job.version).where(self._runtime_due()))
            wanted = [
                job_id
                for job_id, version in due
                if job_id not in held and self.invalid.get(job_id) != version
            ]
            return [
                row
                for start in range(0, len(wanted), _READ_BATCH)
                for row in _records(connection, Job.id.in_(wanted[start : start + _READ_BATCH]))
            ]

    async def let_go(self, runtime: JobRuntime) -> int:
        """Drop the runtime jobs that went quiet from the timer; returns how many.

        Only jobs noted before the previous pass are looked at: a run claimed since has had a
        whole move's time to start, so none finds its job gone.
        """
        settled, self._last_pass = self._last_pass, time.monotonic()
        busy = runtime.busy_jobs()
        let_go = 0
        for index, job_id in enumerate(list(self.candidates), 1):
            if index % _STEP == 0:
                await asyncio.sleep(0)
                busy = runtime.busy_jobs()
            since = self.candidates.get(job_id)
            if since is None or since > settled:
                continue
            registered = runtime.jobs.get(job_id)
            # The code's jobs stay: only the runtime jobs are read again from their rows.
            held = registered is not None and registered.definition.origin is JobOrigin.RUNTIME
            if held and job_id in busy:
                continue  # looked at again on the next pass
            del self.candidates[job_id]
            # A job due again within the horizon is noted anew when that run is claimed.
            if held and not runtime.due_by(job_id, self.end):
                runtime.let_go(job_id)
                let_go += 1
        return let_go


def records(connection: Connection, horizon: Horizon) -> Iterator[JobRecord]:
    """The rows the horizon covers, as plain columns, a few hundred at a time."""
    return _records(connection.execution_options(yield_per=_READ_BATCH), horizon.covered())


def versions(connection: Connection) -> Iterator[tuple[str, int]]:
    """The version of every row, the leader's measure of what changed."""
    result = connection.execution_options(yield_per=5000).execute(select(Job.id, Job.version))
    return cast(Iterator[tuple[str, int]], iter(result))


def record(engine: Engine, job_id: str) -> JobRecord | None:
    """One row as plain columns, or None when there is none."""
    with engine.connect() as connection:
        return next(_records(connection, Job.id == job_id), None)


def _records(connection: Connection, where: ColumnElement[bool]) -> Iterator[JobRecord]:
    result = connection.execute(select(*Job.__table__.columns).where(where).order_by(Job.id))
    return cast(Iterator["JobRecord"], iter(result))
