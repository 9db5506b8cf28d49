"""Claims due times in batches, off the event loop, and starts what it claimed.

Times are claimed a little ahead (`CLAIM_AHEAD`): a run then starts at its time without
waiting for a commit, and a burst of thousands of jobs costs a few transactions, not one each.
Times the look-ahead did not see (a job added just before its time, a slow loop) are claimed
when the timer hands them over. While the database refuses, the times wait in memory and are
retried with backoff; when it answers again each job's catch-up policy decides which of them
still run, and every one of them gets a row.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.jobstores.memory import MemoryJobStore
from sqlalchemy.exc import SQLAlchemyError

from app.components.scheduler import metrics
from app.components.scheduler.fires import MAX_CATCH_UP_ROWS, DueTimes, decide, next_fire
from app.components.scheduler.history import (
    Advance,
    PlannedRun,
    claim_planned,
    claim_scheduled,
    execution_row,
    release,
    release_planned,
)
from app.components.scheduler.lease import LeaseLost
from app.core.db import utcnow
from app.core.enums import ExecutionStatus, MissReason, TriggerKind
from app.core.text import first_line

if TYPE_CHECKING:
    from app.components.scheduler.execution import JobRuntime, Registered

logger = logging.getLogger("app.scheduler.jobs")

SKIP_REASON = "the previous run was still going (max_instances reached)"
# How far ahead times are claimed. A change (a pause, a reschedule) committed within this much
# of a run's time does not hold that run back: it was claimed before the change.
CLAIM_AHEAD = timedelta(milliseconds=250)
_LOOK_AHEAD_EVERY_SECONDS = 0.05
_RETRY_CAP_SECONDS = 10.0
# What a claim returns: ids of the rows inserted, jobs changed meanwhile, the rows it tried.
_Claimed = tuple[set[str], set[str], list[dict[str, Any]]]


class Claimer:
    """Turns due times into committed claims, then into runs."""

    def __init__(self, runtime: JobRuntime) -> None:
        self.runtime = runtime
        self._due: dict[str, list[datetime]] = {}
        self._left_out: Counter[str] = Counter()
        self._planned: list[str] = []
        # Times claimed ahead, started by a timer of their own: the timer's hand-over of them
        # is dropped. By (job id, time), with when they were claimed, to forget old ones.
        self._claimed: dict[tuple[str, datetime], float] = {}
        # Times being claimed right now: neither queued again nor handed over twice.
        self._in_flight: set[tuple[str, datetime]] = set()
        self._wake = asyncio.Event()
        self.healthy = True

    def submit(self, job_id: str, times: list[datetime], *, left_out: int = 0) -> None:
        """Queue due times of a job for the next claim; times claimed or queued already go."""
        queued = self._due.get(job_id, [])
        fresh = [
            moment
            for moment in times
            if self._claimed.pop((job_id, moment), None) is None
            and (job_id, moment) not in self._in_flight
            and moment not in queued
        ]
        if not fresh and not left_out:
            return
        queued = self._due.setdefault(job_id, [])
        queued.extend(fresh)
        self._left_out[job_id] += left_out
        if len(queued) > MAX_CATCH_UP_ROWS:
            # A long outage of a fast job: keep the newest; the count of the rest stays.
            self._left_out[job_id] += len(queued) - MAX_CATCH_UP_ROWS
            del queued[: len(queued) - MAX_CATCH_UP_ROWS]
        self._signal()

    def discard(self, job_id: str) -> None:
        """Forget the queued times of a job that changed or went."""
        self._due.pop(job_id, None)
        self._left_out.pop(job_id, None)

    def held_jobs(self) -> set[str]:
        """The jobs with times queued or being claimed."""
        return {*self._due, *(owner for owner, _ in self._in_flight)}

    def submit_planned(self, execution_id: str) -> None:
        """Queue a pending manual run or retry whose time has come."""
        self._planned.append(execution_id)
        self._signal()

    def _signal(self) -> None:
        self._wake.set()

    async def look_ahead(self, store: MemoryJobStore) -> None:
        """Queue the times falling due within `CLAIM_AHEAD`, until cancelled."""
        runtime = self.runtime
        # Claimed ahead, a run starts at its time without waiting for a commit. Queued for the
        # workers, a run claimed ahead would wait for a worker's next look at the queue.
        ahead_by = CLAIM_AHEAD if runtime.dispatch is None else timedelta(0)
        while True:
            horizon = utcnow() + ahead_by
            for job in store.get_due_jobs(horizon):
                registered = runtime.jobs.get(job.id)
                moment = job.next_run_time
                if registered is None or moment is None:
                    continue
                queued = self._due.get(job.id, ())
                ahead = []
                while moment is not None and moment <= horizon:
                    key = (job.id, moment)
                    if (
                        key not in self._claimed
                        and key not in self._in_flight
                        and moment not in queued
                    ):
                        ahead.append(moment)
                    moment = next_fire(registered.trigger, moment)
                if ahead:
                    self._due.setdefault(job.id, []).extend(ahead)
                    self._signal()
            if self._claimed:
                # A time whose hand-over never came (its job was changed meanwhile).
                stale = time.monotonic() - 60
                for key in [key for key, at in self._claimed.items() if at < stale]:
                    del self._claimed[key]
            await asyncio.sleep(_LOOK_AHEAD_EVERY_SECONDS)

    async def run(self) -> None:
        """Claim until cancelled."""
        delay = 0.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            due, self._due = self._due, {}
            left_out, self._left_out = self._left_out, Counter()
            planned, self._planned = self._planned, []
            flying = {(job_id, moment) for job_id, times in due.items() for moment in times}
            self._in_flight |= flying
            try:
                if due:
                    await self._claim_scheduled(due, left_out)
                    due = {}
                if planned:
                    await self._claim_planned(planned)
            except LeaseLost as error:
                # Nothing was claimed, and nothing more will be: the runtime stops.
                self.runtime.depose(str(error))
                return
            except Exception as error:
                if isinstance(error, SQLAlchemyError):
                    metrics.write_failed("claims")
                self._in_flight -= flying
                for job_id, times in due.items():
                    self.submit(job_id, times, left_out=left_out[job_id])
                self._planned[:0] = planned
                delay = min(max(delay * 2, 0.5), _RETRY_CAP_SECONDS)
                if not isinstance(error, SQLAlchemyError):
                    logger.exception("claiming due runs failed; retrying")
                elif self.healthy:
                    logger.error(
                        "cannot claim due runs; they wait and are claimed when the database "
                        "answers",
                        extra={"error": first_line(error), "retry_in_seconds": delay},
                    )
                self.healthy = False
                await asyncio.sleep(delay)
                self._wake.set()
                continue
            self._in_flight -= flying
            if not self.healthy:
                logger.info("due runs claimed again after an outage")
            self.healthy, delay = True, 0.0

    async def _claim_scheduled(
        self, due: dict[str, list[datetime]], left_out: Counter[str]
    ) -> None:
        runtime = self.runtime
        # What the claim needs of each job, taken on the loop; the rows are built in the
        # claiming thread, so the loop stays free for the runs falling due meanwhile.
        jobs = [
            (registered, times, left_out[job_id])
            for job_id, times in due.items()
            if (registered := runtime.jobs.get(job_id)) is not None and times
        ]
        if not jobs:
            return
        claiming = asyncio.ensure_future(asyncio.to_thread(self._claim_in_thread, jobs))
        try:
            inserted, stale, rows = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # Stopped while the claim commits: what it claims is given back, not left running.
            claiming.add_done_callback(self._give_back)
            raise
        for job_id in sorted(stale):
            logger.info(
                "job changed while its run was being claimed; the change applies instead",
                extra={"job_id": job_id},
            )
        for row in rows:
            # A one-off job that ran, or a job next due beyond the horizon, may be let go.
            runtime.horizon.may_go_quiet(row["job_id"])
            if row["id"] not in inserted:
                if row["job_id"] not in stale:
                    logger.info(
                        "scheduled time claimed by another scheduler; not run here",
                        extra={"job_id": row["job_id"], "scheduled_at": row["scheduled_at"]},
                    )
                continue
            context = {"job_id": row["job_id"], "execution_id": row["id"]}
            if row["status"] is ExecutionStatus.PENDING:
                # Queued for the workers in the claim's transaction: a worker starts it.
                self._claimed[(row["job_id"], row["scheduled_at"])] = time.monotonic()
            elif row["status"] is ExecutionStatus.RUNNING:
                registered = runtime.jobs.get(row["job_id"])
                if registered is not None and next_fire(registered.trigger, row["scheduled_at"]):
                    self._claimed[(row["job_id"], row["scheduled_at"])] = time.monotonic()
                else:
                    # The job's last time (a one-off job): the timer has nothing more to hand
                    # over, and firing it only to drop the time costs a burst dearly.
                    runtime.unregister(row["job_id"])
                runtime.start_at(row["id"], row["job_id"], row["scheduled_at"])
            else:
                logger.warning(
                    "job run missed",
                    extra={
                        **context,
                        "scheduled_at": row["scheduled_at"],
                        "reason": row["error_message"],
                    },
                )

    def _give_back(self, claiming: asyncio.Future[_Claimed]) -> None:
        if claiming.cancelled() or claiming.exception() is not None:
            return
        inserted, _, rows = claiming.result()
        runtime = self.runtime
        claims = [
            (row["id"], row["job_id"], row["scheduled_at"], registered.version)
            for row in rows
            if row["id"] in inserted
            and row["status"] is ExecutionStatus.RUNNING
            and (registered := runtime.jobs.get(row["job_id"])) is not None
        ]
        try:
            release(runtime.engine, claims, runtime.fence)
        except SQLAlchemyError as error:
            logger.warning(
                "claims made while stopping could not be given back; the next leader marks "
                "them interrupted",
                extra={"count": len(claims), "error": first_line(error)},
            )

    def _give_back_planned(self, claiming: asyncio.Future[list[PlannedRun]]) -> None:
        if claiming.cancelled() or claiming.exception() is not None:
            return
        execution_ids = [run.execution_id for run in claiming.result()]
        try:
            release_planned(self.runtime.engine, execution_ids, self.runtime.fence)
        except SQLAlchemyError as error:
            logger.warning(
                "manual runs or retries claimed while stopping could not be given back; the "
                "next leader marks them interrupted",
                extra={"count": len(execution_ids), "error": first_line(error)},
            )

    def _claim_in_thread(self, jobs: list[tuple[Registered, list[datetime], int]]) -> _Claimed:
        runtime = self.runtime
        now = utcnow()
        grace = runtime.settings.misfire_grace_time
        advances: list[Advance] = []
        rows: list[dict[str, Any]] = []
        kinds: dict[str, MissReason] = {}
        unlisted: list[tuple[str, int]] = []
        for registered, times, left_out in jobs:
            definition = registered.definition
            ordered = sorted(set(times))
            fates = decide(
                definition.catch_up,
                definition.grace(grace),
                DueTimes(ordered, None, left_out),
                now,
            )
            for fate in fates:
                # A run that finds the previous one still going is skipped when it is due.
                # Queued for the workers, it is pending until a worker starts it.
                status = (
                    ExecutionStatus.MISSED
                    if fate.missed is not None
                    else ExecutionStatus.PENDING
                    if runtime.dispatch is not None
                    else ExecutionStatus.RUNNING
                )
                row = execution_row(
                    definition.id,
                    definition.queue.value,
                    fate.scheduled_at,
                    status,
                    instance_id=runtime.instance_id,
                    epoch=runtime.epoch,
                    reason=fate.missed,
                )
                rows.append(row)
                if fate.kind is not None:
                    kinds[row["id"]] = fate.kind
            if left_out:
                unlisted.append((definition.id, left_out))
            following = next_fire(registered.trigger, ordered[-1])
            advances.append(Advance(definition.id, registered.version, following))
        inserted, stale = claim_scheduled(
            runtime.engine, advances, rows, runtime.fence, runtime.dispatch
        )
        # Counted here, once committed: a claim cancelled meanwhile keeps its missed rows.
        for row in rows:
            if row["id"] in inserted and row["status"] is ExecutionStatus.MISSED:
                metrics.fire_missed(row["job_id"], kinds.get(row["id"], MissReason.UNLISTED))
                metrics.run_ended(row["job_id"], ExecutionStatus.MISSED)
        for job_id, count in unlisted:
            if job_id not in stale:
                metrics.fires_unlisted(job_id, count)
                logger.warning(
                    "scheduled times missed and not listed: more were due than get rows",
                    extra={"job_id": job_id, "count": count},
                )
        return inserted, stale, rows

    async def _claim_planned(self, planned: list[str]) -> None:
        runtime = self.runtime
        wanted = [eid for eid in planned if eid in runtime.planned]
        if not wanted:
            return
        # A manual run of a job due beyond the horizon: read before claiming, so a database
        # that does not answer leaves the runs planned, to be claimed on the next try.
        for job_id in sorted({runtime.planned[eid][0] for eid in wanted}):
            await runtime.load(job_id)
        # A retry's pending row is written behind; it must be there to be claimed.
        await asyncio.to_thread(runtime.recorder.flush)
        claiming = asyncio.ensure_future(
            asyncio.to_thread(
                claim_planned, runtime.engine, wanted, runtime.fence, runtime.dispatch
            )
        )
        try:
            claimed = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # Stopped while the claim commits: its runs go back to pending, for the next
            # leader, instead of staying claimed with nothing here to start or end them.
            claiming.add_done_callback(self._give_back_planned)
            raise
        for eid in wanted:
            runtime.planned.pop(eid, None)
        for run in claimed:
            runtime.start(
                run.execution_id,
                run.job_id,
                run.scheduled_at,
                attempt=run.attempt,
                trigger_kind=TriggerKind(run.trigger_kind),
                arguments=run.arguments,
            )
