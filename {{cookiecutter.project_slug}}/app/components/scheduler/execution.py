"""Runs jobs the way every run is handled: claim first, then history, timeout, retries, alerts.

APScheduler is the timer: when a job's times fall due it calls `JobRuntime.due`, through the
executor in `executor.py`, and the times go to the `Claimer`. Only a time whose claim has
committed runs; the others were claimed elsewhere, or the job changed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.components.scheduler import metrics
from app.components.scheduler.alerts import FailureStreaks
from app.components.scheduler.catalog import Definitions, JobRecord
from app.components.scheduler.claims import SKIP_REASON, Claimer
from app.components.scheduler.definition import ScheduledJob
from app.components.scheduler.dispatch import Dispatch
from app.components.scheduler.fires import due_times
from app.components.scheduler.history import LOST_LEADERSHIP, Fence, HistoryRecorder
from app.components.scheduler.horizon import Horizon, record
from app.components.scheduler.lease import Lease
from app.components.scheduler.perform import (
    JobCancelled,
    RunningRun,
    log_outcome,
    perform,
    retry_time,
    stop_thread,
)
from app.core.db import utcnow
from app.core.enums import ExecutionStatus, JobOrigin, MissReason, TriggerKind
from app.core.schedules import ScheduleError
from app.core.settings import Settings
from app.core.text import first_line

logger = logging.getLogger("app.scheduler.jobs")


@dataclass(frozen=True)
class PlannedRetry:
    """The next attempt of a run that failed: its pending row's id and its time."""

    execution_id: str
    run_at: datetime


@dataclass(frozen=True)
class Waiting:
    """A run claimed ahead of its time, and the timer that starts it."""

    execution_id: str
    job_id: str
    scheduled_at: datetime
    version: int
    handle: asyncio.Handle


@dataclass(slots=True)
class Registered:
    """What the leader acts on for one job: its definition, trigger and row version."""

    definition: ScheduledJob
    trigger: BaseTrigger
    version: int


@dataclass
class JobRuntime:
    """The leader's jobs, its runs in progress, and how runs are recorded."""

    scheduler: AsyncIOScheduler
    engine: Engine
    recorder: HistoryRecorder
    streaks: FailureStreaks
    settings: Settings
    # The leadership the runtime acts under; it claims and starts nothing once it is lost.
    lease: Lease
    # The workers' queue, where claimed runs go; None: this process runs them.
    dispatch: Dispatch | None = None
    jobs: dict[str, Registered] = field(default_factory=dict)
    running: dict[str, RunningRun] = field(default_factory=dict)
    # Runs in progress per job id, kept beside `running` so the limit check stays O(1).
    active: Counter[str] = field(default_factory=Counter)
    # Manual runs and retries waiting for their time, by execution id.
    planned: dict[str, tuple[str, asyncio.TimerHandle | None]] = field(default_factory=dict)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    # Pending manual runs and retries found when the timer was built; planned once it starts.
    planned_at_start: list[tuple[str, str, datetime]] = field(default_factory=list)
    # The job revision the timer holds: the leader reports it, and applies what is newer.
    applied_revision: int = 0
    # The version of every row the leader has seen (held in the timer or not, valid or not).
    row_versions: dict[str, int] = field(default_factory=dict)
    # The jobs given to the timer: only these have an APScheduler job to remove.
    timed: set[str] = field(default_factory=set)
    # How rows become definitions, against the code's job list the timer was built from.
    definitions: Definitions = field(default_factory=lambda: Definitions(()))
    # Runs claimed ahead of their time, by execution id, until they start.
    waiting: dict[str, Waiting] = field(default_factory=dict)
    # Set when the lease is lost: the runtime has stopped claiming and waits to be shut down.
    deposed: asyncio.Event = field(default_factory=asyncio.Event)
    claimer: Claimer = field(init=False)
    # Which runtime jobs the timer holds: those due within the horizon.
    horizon: Horizon = field(init=False)
    _claiming: asyncio.Task[None] | None = None
    _keeping: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.claimer = Claimer(self)
        self.horizon = Horizon(self.settings.timer_horizon_seconds)
        self.idle.set()

    @property
    def epoch(self) -> int:
        """The leader's epoch, stored with every run it claims."""
        return self.lease.epoch

    @property
    def fence(self) -> Fence:
        """What every claim checks is still the current lease."""
        return (self.lease.instance_id, self.lease.epoch)

    def begin(self) -> None:
        """Start claiming and renewing the lease (the timer starts); plan pending runs."""
        for execution_id, job_id, run_at in self.planned_at_start:
            self.plan(execution_id, job_id, run_at)
        self.planned_at_start = []
        if self._claiming is None:
            self._claiming = asyncio.ensure_future(self._claim())
        if self._keeping is None:
            self._keeping = asyncio.ensure_future(self._keep_lease())

    async def _keep_lease(self) -> None:
        """Renew the lease every third of it (or sooner); depose this runtime once it cannot."""
        lease = self.lease
        failing = False
        while lease.valid():
            interval = 0.5 if failing else lease.renewal_interval()
            await asyncio.sleep(min(interval, lease.remaining()))
            if not lease.valid():
                break
            try:
                # A renewal that hangs past the lease's end must not keep the leader firing.
                await asyncio.wait_for(asyncio.to_thread(lease.renew), lease.remaining())
            except (SQLAlchemyError, TimeoutError) as error:
                metrics.lease_renewal_failed()
                if not failing:
                    logger.error(
                        "lease not renewed; retrying until it ends",
                        extra={
                            "error": first_line(error),
                            "seconds_left": round(max(lease.remaining(), 0.0), 3),
                        },
                    )
                failing = True
                continue
            if failing and lease.valid():
                logger.info("lease renewed again", extra={"epoch": lease.epoch})
            failing = False
        self.depose(lease.lost or "the lease could not be renewed before it ended")

    async def _claim(self) -> None:
        store = self.scheduler._lookup_jobstore("default")
        await asyncio.gather(
            self.claimer.run(), self.claimer.look_ahead(store), self.horizon.keep(self)
        )

    def depose(self, reason: str) -> None:
        """Fail-stop: the lease is lost, so claim and start nothing more; idempotent."""
        self.lease.lose(reason)
        if self.deposed.is_set():
            return
        logger.error("leadership lost; claiming stopped", extra={"reason": self.lease.lost})
        if self._claiming is not None:
            self._claiming.cancel()
            self._claiming = None
        self.deposed.set()

    def stop_claiming(self) -> list[Waiting]:
        """Claim nothing more, stop renewing; returns the runs claimed ahead, not started.

        Their claims are the caller's to release (`history.release`): while the lease holds,
        the next leader runs them at their time.
        """
        for task in (self._claiming, self._keeping):
            if task is not None:
                task.cancel()
        self._claiming = self._keeping = None
        waiting = list(self.waiting.values())
        for run in waiting:
            run.handle.cancel()
        self.waiting.clear()
        return waiting

    @property
    def instance_id(self) -> str:
        """This scheduler process's id, stored with every run it claims."""
        return self.lease.instance_id

    # Jobs

    def register(
        self,
        definition: ScheduledJob,
        version: int,
        next_run_at: datetime | None,
        paused: bool,
    ) -> None:
        """Give the timer a job as its row has it; times already due go to the claimer."""
        trigger = definition.trigger(self.settings.timezone)
        self.unregister(definition.id)
        # Times queued under the job's old version are not times of this one.
        self.claimer.discard(definition.id)
        self.jobs[definition.id] = Registered(definition, trigger, version)
        self.row_versions[definition.id] = version
        if definition.origin is JobOrigin.RUNTIME and not self.horizon.due_within(
            next_run_at, paused
        ):
            # Held for a change or a manual run, not for a time due soon.
            self.horizon.may_go_quiet(definition.id)
        if next_run_at is None and not paused:
            return  # a one-time job that has run
        upcoming = next_run_at
        if not paused and next_run_at is not None and next_run_at <= utcnow():
            due = due_times(trigger, next_run_at, utcnow())
            self.claimer.submit(definition.id, due.times, left_out=due.left_out)
            upcoming = due.following
            if upcoming is None:
                return
        self.scheduler.add_job(
            self.due,
            trigger=trigger,
            args=(definition.id,),
            id=definition.id,
            name=definition.name,
            # Paused: in the timer, never due.
            next_run_time=None if paused else upcoming,
            # Every due time is handed over; the claimer applies the job's catch-up policy.
            coalesce=False,
            misfire_grace_time=None,
            replace_existing=True,
        )
        self.timed.add(definition.id)

    def unregister(self, job_id: str) -> None:
        """Take a job off the timer (it stays known until `forget`)."""
        if job_id in self.timed:
            self.timed.discard(job_id)
            # A one-time job that has fired is gone from the timer already.
            if self.scheduler.get_job(job_id) is not None:
                self.scheduler.remove_job(job_id)

    def take(self, row: JobRecord) -> ScheduledJob | None:
        """Give the timer a row's job, unless it holds the job or a newer version is known.

        Returns the definition the leader holds, or None: the row was overtaken by a change
        applied meanwhile, or its definition is invalid (reported once per version).
        """
        registered = self.jobs.get(row.id)
        if registered is not None:
            return registered.definition
        if self.row_versions.get(row.id, 0) > row.version:
            return None
        self.row_versions[row.id] = row.version
        try:
            definition = self.definitions.of(row)
        except ScheduleError as error:
            if row.origin == JobOrigin.RUNTIME and self.horizon.invalid.get(row.id) != row.version:
                self.horizon.invalid[row.id] = row.version
                logger.error(
                    "runtime job not scheduled: its definition is invalid",
                    extra={"job_id": row.id, "reason": str(error)},
                )
            return None
        self.register(definition, row.version, row.next_run_at, row.paused)
        return definition

    async def load(self, job_id: str) -> ScheduledJob | None:
        """The definition the leader runs `job_id` with, read from its row if not held."""
        registered = self.jobs.get(job_id)
        if registered is not None:
            return registered.definition
        row = await asyncio.to_thread(record, self.engine, job_id)
        return None if row is None else self.take(row)

    def busy_jobs(self) -> set[str]:
        """The jobs with a run going, or claimed, planned or queued to be claimed."""
        return {
            *(job_id for job_id, count in self.active.items() if count),
            *self.claimer.held_jobs(),
            *(run.job_id for run in self.waiting.values()),
            *(owner for owner, _ in self.planned.values()),
        }

    def due_by(self, job_id: str, moment: datetime) -> bool:
        """Whether the timer has a time of `job_id` due by `moment`."""
        timed = self.scheduler.get_job(job_id, "default") if job_id in self.timed else None
        return (
            timed is not None and timed.next_run_time is not None and timed.next_run_time <= moment
        )

    def let_go(self, job_id: str) -> None:
        """Drop a quiet job from memory; its row (and version) keep what the timer needs."""
        self.unregister(job_id)
        self.jobs.pop(job_id, None)

    def forget(self, job_id: str) -> list[str]:
        """Drop a deleted job and its planned runs; returns their execution ids."""
        self.unregister(job_id)
        self.claimer.discard(job_id)
        self.jobs.pop(job_id, None)
        self.row_versions.pop(job_id, None)
        self.horizon.candidates.pop(job_id, None)
        self.horizon.invalid.pop(job_id, None)
        dropped = [eid for eid, (owner, _) in self.planned.items() if owner == job_id]
        for execution_id in dropped:
            _, handle = self.planned.pop(execution_id)
            if handle is not None:
                handle.cancel()
        return dropped

    def due(self, job_id: str, run_times: Sequence[datetime] = ()) -> None:
        """Called by the timer when `run_times` of `job_id` fall due.

        (The default only satisfies APScheduler's check of the arguments a job is given.)
        """
        self.claimer.submit(job_id, list(run_times))

    def definition(self, job_id: str) -> ScheduledJob | None:
        """The definition the leader runs `job_id` with."""
        registered = self.jobs.get(job_id)
        return registered.definition if registered else None

    # Manual runs and retries

    def plan(self, execution_id: str, job_id: str, run_at: datetime) -> bool:
        """Claim and run a pending execution at `run_at`; False if it is planned already."""
        if execution_id in self.planned or execution_id in self.running:
            return False
        loop = asyncio.get_running_loop()
        delay = max(0.0, (run_at - utcnow()).total_seconds())
        handle = loop.call_later(delay, self._planned_due, execution_id)
        self.planned[execution_id] = (job_id, handle)
        return True

    def _planned_due(self, execution_id: str) -> None:
        entry = self.planned.get(execution_id)
        if entry is not None:
            self.planned[execution_id] = (entry[0], None)
            self.claimer.submit_planned(execution_id)

    # Runs

    def at_capacity(self, job_id: str) -> bool:
        """Whether `job_id` runs as many times at once as its `max_instances` allows."""
        registered = self.jobs.get(job_id)
        limit = registered.definition.max_instances if registered else 1
        return self.active[job_id] >= limit

    def start_at(self, execution_id: str, job_id: str, scheduled_at: datetime) -> None:
        """Start a claimed scheduled run at its time (at once if that has come)."""
        loop = asyncio.get_running_loop()
        wait = (scheduled_at - utcnow()).total_seconds()
        if wait <= 0:
            loop.call_soon(self.start, execution_id, job_id, scheduled_at)
            return
        registered = self.jobs.get(job_id)
        handle = loop.call_later(wait, self._waited, execution_id)
        self.waiting[execution_id] = Waiting(
            execution_id, job_id, scheduled_at, registered.version if registered else 0, handle
        )

    def _waited(self, execution_id: str) -> None:
        run = self.waiting.pop(execution_id, None)
        if run is not None:
            self.start(run.execution_id, run.job_id, run.scheduled_at)

    def start(
        self,
        execution_id: str,
        job_id: str,
        scheduled_at: datetime,
        *,
        attempt: int = 1,
        trigger_kind: TriggerKind = TriggerKind.SCHEDULE,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Start a claimed run on the loop; a run that cannot start is recorded as failed."""
        if not self.lease.valid():
            # Claimed under a lease that has ended since (the process was frozen, or cut off):
            # another leader may run by now, and this one starts nothing more.
            self.recorder.finished(
                execution_id, job_id, ExecutionStatus.MISSED, 0.0, reason=LOST_LEADERSHIP
            )
            metrics.fire_missed(job_id, MissReason.LOST_LEADERSHIP)
            self.depose(self.lease.lost or "the lease ended before a claimed run's time")
            return
        try:
            self._start(execution_id, job_id, scheduled_at, attempt, trigger_kind, arguments)
        except Exception as error:
            # The claim is committed: its row must end, whatever went wrong here.
            logger.exception("claimed run could not start", extra={"job_id": job_id})
            self._ended(execution_id)
            self.recorder.finished(execution_id, job_id, ExecutionStatus.FAILED, 0.0, error=error)

    def _start(
        self,
        execution_id: str,
        job_id: str,
        scheduled_at: datetime,
        attempt: int,
        trigger_kind: TriggerKind,
        arguments: Mapping[str, Any] | None,
    ) -> None:
        definition = self.definition(job_id)
        if definition is None:
            self.recorder.finished(
                execution_id,
                job_id,
                ExecutionStatus.CANCELLED,
                0.0,
                error=LookupError(f"job {job_id!r} is no longer scheduled"),
            )
            return
        if self.at_capacity(job_id):
            # Decided when the run is due, not when it was claimed: the previous run may end
            # in between.
            self.recorder.finished(
                execution_id, job_id, ExecutionStatus.SKIPPED, 0.0, reason=SKIP_REASON
            )
            metrics.fire_skipped(job_id)
            logger.warning(
                "job run skipped: previous run still going",
                extra={"job_id": job_id, "execution_id": execution_id},
            )
            return
        run = self.running[execution_id] = RunningRun(job_id)
        self.active[job_id] += 1
        self.idle.clear()
        self.recorder.started(execution_id)
        if trigger_kind is TriggerKind.SCHEDULE:
            metrics.fire_started(definition.queue.value, scheduled_at, utcnow())
        run.task = asyncio.ensure_future(
            self._run(definition, run, execution_id, attempt, trigger_kind, arguments)
        )

    def _ended(self, execution_id: str) -> None:
        run = self.running.pop(execution_id, None)
        if run is not None:
            self.active[run.job_id] -= 1
        if not self.running:
            self.idle.set()

    async def _run(
        self,
        definition: ScheduledJob,
        run: RunningRun,
        execution_id: str,
        attempt: int,
        kind: TriggerKind,
        arguments: Mapping[str, Any] | None,
    ) -> None:
        context = {"job_id": definition.id, "execution_id": execution_id, "attempt": attempt}
        logger.info("job started", extra={**context, "trigger": kind.value})
        outcome = await perform(definition, run, arguments)
        # The one place a run's end is recorded.
        self._ended(execution_id)
        # A failed attempt's end and its retry's row go in one batch: a stop or a crash
        # between the two writes would record the failure and lose the retry.
        with self.recorder.together():
            self.recorder.finished(
                execution_id,
                definition.id,
                outcome.status,
                outcome.duration_ms,
                error=outcome.error,
                traceback=outcome.trace,
            )
            retry = self._queue_retry(definition, outcome.status, attempt, arguments)
        metrics.run_finished(definition.id, definition.queue.value, outcome.duration_ms / 1000)
        if retry is not None:
            self.plan(retry.execution_id, definition.id, retry.run_at)
            metrics.retry_planned(definition.id)
        failure = log_outcome(outcome, context, retry.run_at if retry else None)
        if outcome.status is ExecutionStatus.SUCCEEDED:
            self.streaks.succeeded(definition.id)
        elif failure is not None:
            await self.streaks.failed(definition.id, execution_id, failure)
        if outcome.stopped:
            raise asyncio.CancelledError

    def _queue_retry(
        self,
        definition: ScheduledJob,
        status: ExecutionStatus,
        attempt: int,
        arguments: Mapping[str, Any] | None,
    ) -> PlannedRetry | None:
        """Queue the retry a failed or timed-out attempt earns under the job's policy."""
        run_at = retry_time(definition, status, attempt)
        if run_at is None:
            return None
        # A retry is a pending row, so it shows in the history at once, and a leader that
        # takes over runs it.
        execution_id = self.recorder.planned(
            definition.id,
            definition.queue.value,
            run_at,
            attempt=attempt + 1,
            arguments=arguments,
        )
        return PlannedRetry(execution_id, run_at)

    def retry_after_loss(self, job_id: str, attempt: int) -> tuple[str, datetime] | None:
        """The queue and time of the retry a run its process lost earns, or None.

        Called from a thread: reads the job's row when the leader does not hold it.
        """
        definition = self.definition(job_id)
        if definition is None:
            row = record(self.engine, job_id)
            try:
                definition = None if row is None else self.definitions.of(row)
            except ScheduleError:
                definition = None
        if definition is None or attempt >= definition.retry.attempts:
            return None
        return definition.queue.value, utcnow() + definition.retry.backoff.delay_before(attempt)

    def cancel(self, execution_id: str) -> str:
        """Stop a pending or running run; returns what was done. KeyError if neither."""
        run = self.running.get(execution_id)
        if run is None:
            entry = self.planned.pop(execution_id, None)
            if entry is None:
                raise KeyError(execution_id)
            if entry[1] is not None:
                entry[1].cancel()
            self.recorder.finished(
                execution_id,
                entry[0],
                ExecutionStatus.CANCELLED,
                0.0,
                error=JobCancelled("cancelled before it started"),
            )
            return "the planned run was removed before it started"
        run.cancel_requested = True
        if stop_thread(run):
            return "the run was told to stop; it stops at its next Python instruction"
        if run.task is not None:
            run.task.cancel()
        return "the run was cancelled"

    def cancel_runs(self) -> None:
        """Cancel every run in progress; each records its end as interrupted."""
        for run in self.running.values():
            if run.task is not None:
                run.task.cancel()
        for _, handle in self.planned.values():
            if handle is not None:
                handle.cancel()

    def interrupt_running(self, reason: str) -> int:
        """Mark every run still in progress as interrupted; returns how many."""
        for execution_id, run in list(self.running.items()):
            self.recorder.finished(
                execution_id,
                run.job_id,
                ExecutionStatus.INTERRUPTED,
                0.0,
                error=RuntimeError(reason),
            )
        count = len(self.running)
        self.running.clear()
        self.active.clear()
        self.idle.set()
        return count

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the history has committed what is queued."""
        return self.recorder.flush(timeout)


_runtime: JobRuntime | None = None


def bind(runtime: JobRuntime) -> None:
    """Make `runtime` the process's runtime; the scheduler process has exactly one."""
    global _runtime
    _runtime = runtime


def retire_stopped_runtime() -> None:
    """Give up the lease of the bound runtime if its timer is not running.

    A process has one runtime: building another, as a restart does, replaces one that was
    never started or has been shut down, and its lease goes with it.
    """
    if _runtime is not None and not _runtime.scheduler.running:
        _runtime.lease.give_up()


def current_runtime() -> JobRuntime:
    """The runtime `create_scheduler()` bound."""
    if _runtime is None:
        raise RuntimeError("no scheduler runtime: create_scheduler() binds one")
    return _runtime
