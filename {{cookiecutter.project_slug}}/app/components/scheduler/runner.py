"""Runs the scheduler until SIGTERM or SIGINT: standby, leadership, heartbeat, a bounded stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import signal
import sys
import time

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.components.scheduler import metrics
from app.components.scheduler.consumer import CommandConsumer
from app.components.scheduler.control import command_consumer
from app.components.scheduler.dispatch import Dispatch
from app.components.scheduler.execution import JobRuntime, current_runtime
from app.components.scheduler.executor import waiting_claims
from app.components.scheduler.heartbeat import Heartbeat
from app.components.scheduler.history import mark_interrupted, recover_stalled, release
from app.components.scheduler.lease import Candidate, Lease, new_instance_id
from app.components.scheduler.main import create_scheduler
from app.core.db import get_engine, redacted_url
from app.core.enums import ExecutionStatus, JobOrigin, SchedulerState
from app.core.metrics import serve
from app.core.migrations import require_current_schema, upgrade
from app.core.settings import Settings
from app.core.text import first_line

logger = logging.getLogger("app.scheduler")


def tune_for_latency() -> None:
    """Keep the interpreter from pausing the event loop once start-up has built the jobs.

    - A full garbage collection walks every live object; with thousands of stored jobs that is
      a pause of tens of milliseconds while jobs are due (measured by `make bench`). Freezing
      moves what start-up built out of its sight; objects allocated later are collected as
      usual.
    - The threads that commit claims and history hold the interpreter lock for up to the
      switch interval (5 ms by default) before the loop gets it back; 1 ms keeps a run that
      falls due meanwhile from waiting that long.
    """
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(0.001)


class SchedulerProcess:
    """The scheduler process's life: standby, leading (each time from the tables), stopping."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        instance_id = new_instance_id()
        self.heartbeat = Heartbeat(engine, instance_id)
        self.candidate = Candidate(engine, instance_id, settings.leader_lease_seconds)
        self.stop = asyncio.Event()
        self.job_count = 0
        self.consumer: CommandConsumer | None = None
        self.runtime: JobRuntime | None = None
        self._beaten_at = -math.inf

    @property
    def instance_id(self) -> str:
        return self.heartbeat.instance_id

    async def beat(self, state: SchedulerState) -> None:
        # Database calls block, so they run in a thread and leave the event loop to the jobs.
        applied = self.runtime.applied_revision if self.runtime else 0
        self._beaten_at = time.monotonic()
        try:
            await asyncio.to_thread(self.heartbeat.beat, state, self.job_count, applied)
        except SQLAlchemyError as error:
            metrics.write_failed("heartbeat")
            logger.warning("heartbeat not recorded", extra={"error": first_line(error)})

    async def pause(self, seconds: float, *, until: asyncio.Event | None = None) -> None:
        """Wait `seconds`, or less if told to stop (or `until` is set)."""
        waits = [asyncio.ensure_future(self.stop.wait())]
        if until is not None:
            waits.append(asyncio.ensure_future(until.wait()))
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()

    async def wait_for_lease(self) -> Lease | None:
        """Wait on standby until this process takes the lease; None if told to stop first."""
        announced = unreachable = False
        while not self.stop.is_set():
            try:
                lease = await asyncio.to_thread(self.candidate.try_take)
            except SQLAlchemyError as error:
                if not unreachable:
                    logger.error(
                        "cannot reach the database to take the lease; retrying",
                        extra={"error": first_line(error)},
                    )
                unreachable, lease = True, None
            else:
                unreachable = False
            if lease is not None:
                return lease
            if not announced and not unreachable:
                logger.warning(
                    "another scheduler leads; waiting on standby",
                    extra={"instance_id": self.instance_id},
                )
                announced = True
            if time.monotonic() - self._beaten_at >= self.settings.heartbeat_interval_seconds:
                await self.beat(SchedulerState.STANDBY)
            await self.pause(self.settings.standby_poll_seconds)
        return None

    async def lead(self, lease: Lease) -> list[str]:
        """Lead under `lease` until told to stop or the lease is lost; returns abandoned jobs.

        Everything is built from the tables: a process that led before trusts none of what it
        remembers from then.
        """
        try:
            scheduler, runtime = await self.build(lease)
        except SQLAlchemyError as error:
            logger.error(
                "could not start leading; back on standby",
                extra={"epoch": lease.epoch, "error": first_line(error)},
            )
            await asyncio.to_thread(lease.give_up)
            return []
        metrics.leading(lease.epoch)
        logger.info(
            "scheduler started",
            extra={
                "instance_id": self.instance_id,
                "epoch": lease.epoch,
                "database": redacted_url(self.engine.url),
                "timezone": self.settings.timezone,
                "jobs": sorted(runtime.definitions.code),
                "runtime_jobs_within_horizon": sum(
                    held.definition.origin is JobOrigin.RUNTIME for held in runtime.jobs.values()
                ),
            },
        )
        while not self.stop.is_set() and not runtime.deposed.is_set():
            await self.pause(self.settings.heartbeat_interval_seconds, until=runtime.deposed)
            if runtime.deposed.is_set():
                break
            with contextlib.suppress(SQLAlchemyError):
                self.job_count = len(await asyncio.to_thread(scheduler.get_jobs))
            await self.beat(SchedulerState.RUNNING)
            if runtime.dispatch is not None:
                await self.recover_stalled(runtime, runtime.dispatch)
        if runtime.deposed.is_set():
            await self.beat(SchedulerState.STANDBY)
        metrics.not_leading()
        abandoned = await self.shut_down(scheduler, runtime)
        await asyncio.to_thread(lease.give_up)
        if runtime.deposed.is_set() and not self.stop.is_set():
            logger.warning(
                "back on standby after losing leadership",
                extra={"epoch": lease.epoch, "reason": lease.lost},
            )
        return abandoned

    async def build(self, lease: Lease) -> tuple[AsyncIOScheduler, JobRuntime]:
        """The timer and the runtime of one leadership, started, from the tables."""
        # Only the leader runs jobs, so any run still marked running was left by a process
        # that stopped, died or lost the lease during it.
        interrupted = await asyncio.to_thread(mark_interrupted, self.engine)
        if interrupted:
            logger.warning(
                "runs left by a previous scheduler marked interrupted",
                extra={"count": interrupted},
            )
        scheduler = await asyncio.to_thread(
            create_scheduler, settings=self.settings, engine=self.engine, lease=lease
        )
        self.runtime = runtime = current_runtime()
        scheduler.start()
        await self.beat(SchedulerState.RUNNING)
        await self.start_consuming_commands(runtime)
        tune_for_latency()
        self.job_count = len(scheduler.get_jobs())
        return scheduler, runtime

    async def recover_stalled(self, runtime: JobRuntime, dispatch: Dispatch) -> None:
        """End the runs of workers whose heartbeat went stale; retry them per their jobs."""
        try:
            recovered = await asyncio.to_thread(
                recover_stalled,
                self.engine,
                dispatch,
                self.settings.heartbeat_stale_after_seconds,
                runtime.retry_after_loss,
            )
        except SQLAlchemyError as error:
            metrics.write_failed("history")
            logger.warning("runs of silent workers not checked", extra={"error": first_line(error)})
            return
        for execution_id, job_id in recovered.interrupted:
            metrics.run_ended(job_id, ExecutionStatus.INTERRUPTED)
            logger.error(
                "run interrupted: its worker stopped or died during it",
                extra={"job_id": job_id, "execution_id": execution_id},
            )
        for execution_id, job_id in recovered.retries:
            metrics.retry_planned(job_id)
            logger.info(
                "retry queued for a run its worker did not finish",
                extra={"job_id": job_id, "execution_id": execution_id},
            )
        if recovered.requeued:
            logger.warning(
                "runs taken by a silent worker before they started went back to the queue",
                extra={"count": recovered.requeued},
            )

    async def release_waiting(self, runtime: JobRuntime) -> None:
        """Stop claiming, and give back the claims of runs not yet started."""
        waiting = runtime.stop_claiming()
        try:
            released, missed = await asyncio.to_thread(
                release, self.engine, waiting_claims(waiting), runtime.fence
            )
        except SQLAlchemyError as error:
            logger.warning(
                "claims of runs not yet started could not be released; the next leader marks "
                "them interrupted",
                extra={"count": len(waiting), "error": first_line(error)},
            )
            return
        if released:
            logger.info("claims of runs not yet started released", extra={"count": released})
        if missed:
            logger.warning(
                "claimed runs not started: leadership was lost first", extra={"count": missed}
            )

    async def shut_down(self, scheduler: AsyncIOScheduler, runtime: JobRuntime) -> list[str]:
        """Stop starting jobs, give running ones a bounded time, then stop; returns abandoned."""
        logger.info("scheduler stopping", extra={"running_jobs": _running_ids(runtime)})
        if self.consumer:
            await asyncio.to_thread(self.consumer.stop)
            self.consumer = None
        scheduler.pause()
        await self.release_waiting(runtime)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.idle.wait(), self.settings.shutdown_timeout_seconds)
        abandoned = _running_ids(runtime)
        if abandoned:
            logger.warning(
                "jobs still running at shutdown were abandoned",
                extra={
                    "job_ids": abandoned,
                    "waited_seconds": self.settings.shutdown_timeout_seconds,
                },
            )
        # Shutting the timer down cancels the runs still going, which record themselves as
        # interrupted on the loop's next turns (a run in a thread cannot be stopped, but its
        # record ends all the same).
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0.1)
        runtime.interrupt_running("the scheduler stopped during the run")
        await asyncio.to_thread(runtime.recorder.close, self.settings.shutdown_timeout_seconds)
        return abandoned

    async def start_consuming_commands(self, runtime: JobRuntime) -> None:
        """Apply the changes and commands sent while no scheduler ran, then listen for more."""
        loop = asyncio.get_running_loop()
        self.consumer = command_consumer(runtime, loop)
        applied = await asyncio.to_thread(self.consumer.drain)
        if applied:
            logger.info("commands sent while no scheduler ran applied", extra={"count": applied})
        self.consumer.start()

    async def run(self) -> list[str]:
        """The whole life of the process; returns the jobs abandoned at shutdown."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop.set)
        abandoned: list[str] = []
        while not self.stop.is_set():
            lease = await self.wait_for_lease()
            if lease is None:
                break
            abandoned = await self.lead(lease)
        await self.beat(SchedulerState.STOPPED)
        logger.info("scheduler stopped", extra={"instance_id": self.instance_id})
        return abandoned


def _running_ids(runtime: JobRuntime) -> list[str]:
    return sorted({run.job_id for run in runtime.running.values()})


def prepare_schema(engine: Engine, settings: Settings) -> None:
    """Migrate the database to this code's schema, or check that it is there already."""
    if not settings.migrate_on_start:
        require_current_schema(engine)
        return
    before, after = upgrade(engine)
    if before != after:
        logger.info("database schema upgraded", extra={"from": before, "to": after})


def serve_metrics(settings: Settings, process: SchedulerProcess) -> None:
    """Serve `/metrics` on the scheduler's own port, if metrics are on.

    `MetricsAddressUnusable` if the address cannot be listened on.
    """
    if not settings.metrics_enabled:
        return
    metrics.LEADER_STATE.watch(lambda: process.runtime)
    serve(
        metrics.REGISTRY, settings.scheduler_metrics_host, settings.scheduler_metrics_port, logger
    )


async def run_scheduler(settings: Settings) -> None:
    """Run the scheduler process until a stop signal; it exits within the shutdown timeout."""
    engine = get_engine()
    prepare_schema(engine, settings)
    process = SchedulerProcess(settings, engine)
    serve_metrics(settings, process)
    abandoned = await process.run()
    engine.dispose()
    if abandoned:
        # A job running in a worker thread cannot be interrupted, and the interpreter would
        # wait for it at exit; the stop was promised within the timeout, so leave now.
        logging.shutdown()
        os._exit(0)
