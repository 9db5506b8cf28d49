"""Runs the scheduler until SIGTERM or SIGINT: leader lock, heartbeat, and a bounded stop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections import Counter

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.components.scheduler.consumer import CommandConsumer
from app.components.scheduler.control import CommandHandler
from app.components.scheduler.execution import (
    current_runtime,
    mark_interrupted,
    mark_lost_planned_runs,
)
from app.components.scheduler.heartbeat import Heartbeat
from app.components.scheduler.leader import LeaderLock, leader_lock
from app.components.scheduler.main import create_scheduler, remove_unregistered_jobs
from app.core.db import get_engine, redacted_url
from app.core.enums import SchedulerState
from app.core.migrations import require_current_schema, upgrade
from app.core.settings import Settings

logger = logging.getLogger("app.scheduler")


def tune_for_latency() -> None:
    """Keep garbage collection from pausing the event loop once start-up has built the jobs.

    A full collection walks every live object; with thousands of stored jobs that is a pause
    of tens of milliseconds while jobs are due (measured by `make bench`). Freezing moves what
    start-up built out of its sight; objects allocated later are collected as usual.
    """
    gc.collect()
    gc.freeze()


class RunningJobs:
    """Counts the runs in progress per job id, from APScheduler's events."""

    def __init__(self, scheduler: AsyncIOScheduler) -> None:
        self.counts: Counter[str] = Counter()
        self.changed = asyncio.Event()
        scheduler.add_listener(self._started, EVENT_JOB_SUBMITTED)
        scheduler.add_listener(self._finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)

    def _started(self, event: JobSubmissionEvent) -> None:
        # One submission covers several missed runs when coalescing is off.
        self.counts[event.job_id] += len(event.scheduled_run_times)

    def _finished(self, event: JobEvent) -> None:
        self.counts[event.job_id] -= 1
        self.changed.set()

    def ids(self) -> list[str]:
        """The jobs with at least one run in progress."""
        return sorted(job_id for job_id, count in self.counts.items() if count > 0)

    async def wait_until_idle(self, timeout: float) -> list[str]:
        """Wait up to `timeout` seconds for every run to end; returns those still running."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.ids() and loop.time() < deadline:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), deadline - loop.time())
        return self.ids()


class SchedulerProcess:
    """The scheduler process's life: standby, leading, stopping."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.heartbeat = Heartbeat(engine)
        self.lock: LeaderLock = leader_lock(engine)
        self.stop = asyncio.Event()
        self.job_count = 0
        self.consumer: CommandConsumer | None = None

    async def beat(self, state: SchedulerState) -> None:
        # Database calls block, so they run in a thread and leave the event loop to the jobs.
        try:
            await asyncio.to_thread(self.heartbeat.beat, state, self.job_count)
        except SQLAlchemyError as error:
            logger.warning("heartbeat not recorded", extra={"error": str(error).splitlines()[0]})

    async def pause_for_a_beat(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), self.settings.heartbeat_interval_seconds)

    async def become_leader(self) -> bool:
        """Wait on standby until this process holds the lock; False if told to stop first."""
        announced = False
        while not self.stop.is_set():
            if await asyncio.to_thread(self.lock.try_acquire):
                return True
            if not announced:
                logger.warning(
                    "another scheduler holds the leader lock; waiting on standby",
                    extra={"instance_id": self.heartbeat.instance_id},
                )
                announced = True
            await self.beat(SchedulerState.STANDBY)
            await self.pause_for_a_beat()
        return False

    async def lead(self, scheduler: AsyncIOScheduler) -> None:
        """Beat until told to stop; if the lock is lost, pause until it is held again."""
        while not self.stop.is_set():
            if not await asyncio.to_thread(self.lock.holds):
                logger.error("leader lock lost; pausing until it is held again")
                scheduler.pause()
                if self.consumer:
                    self.consumer.suspend()
                if not await self.become_leader():
                    return
                logger.info("leader lock held again; resuming")
                scheduler.resume()
                if self.consumer:
                    self.consumer.resume()
            with contextlib.suppress(SQLAlchemyError):
                self.job_count = len(await asyncio.to_thread(scheduler.get_jobs))
            await self.beat(SchedulerState.RUNNING)
            await self.pause_for_a_beat()

    async def shut_down(self, scheduler: AsyncIOScheduler, running: RunningJobs) -> list[str]:
        """Stop starting jobs, give running ones a bounded time, then stop; returns abandoned."""
        logger.info("scheduler stopping", extra={"running_jobs": running.ids()})
        if self.consumer:
            await asyncio.to_thread(self.consumer.stop)
        scheduler.pause()
        abandoned = await running.wait_until_idle(self.settings.shutdown_timeout_seconds)
        if abandoned:
            logger.warning(
                "jobs still running at shutdown were abandoned",
                extra={
                    "job_ids": abandoned,
                    "waited_seconds": self.settings.shutdown_timeout_seconds,
                },
            )
        # AsyncIOScheduler.shutdown runs on the loop's next turn; it cancels coroutine jobs,
        # which record themselves as interrupted.
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0.1)
        runtime = current_runtime()
        runtime.interrupt_running("the scheduler stopped during the run")
        await asyncio.to_thread(runtime.recorder.close, self.settings.shutdown_timeout_seconds)
        return abandoned

    async def start_consuming_commands(self) -> None:
        """Apply the commands sent while no scheduler ran, then listen for new ones."""
        runtime = current_runtime()
        self.consumer = CommandConsumer(
            self.engine,
            asyncio.get_running_loop(),
            CommandHandler(runtime),
            runtime.flush,
            self.settings.command_poll_seconds,
        )
        applied = await asyncio.to_thread(self.consumer.drain)
        if applied:
            logger.info("commands sent while no scheduler ran applied", extra={"count": applied})
        lost = await asyncio.to_thread(mark_lost_planned_runs, self.engine, runtime)
        if lost:
            logger.warning("planned runs lost by a previous scheduler", extra={"count": lost})
        self.consumer.start()

    async def run(self) -> list[str]:
        """The whole life of the process; returns the jobs abandoned at shutdown."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop.set)

        abandoned: list[str] = []
        if await self.become_leader():
            # Only the leader runs jobs, so any run still marked running was left by a process
            # that stopped or died during it.
            interrupted = await asyncio.to_thread(mark_interrupted, self.engine)
            if interrupted:
                logger.warning(
                    "runs left by a previous scheduler marked interrupted",
                    extra={"count": interrupted},
                )
            scheduler = create_scheduler(
                self.settings, self.engine, instance_id=self.heartbeat.instance_id
            )
            remove_unregistered_jobs(scheduler, self.engine)
            running = RunningJobs(scheduler)
            scheduler.start()
            await self.start_consuming_commands()
            tune_for_latency()
            self.job_count = len(scheduler.get_jobs())
            logger.info(
                "scheduler started",
                extra={
                    "instance_id": self.heartbeat.instance_id,
                    "database": redacted_url(self.engine.url),
                    "timezone": self.settings.timezone,
                    "jobs": [job.id for job in scheduler.get_jobs()],
                },
            )
            await self.lead(scheduler)
            abandoned = await self.shut_down(scheduler, running)
        await self.beat(SchedulerState.STOPPED)
        await asyncio.to_thread(self.lock.release)
        logger.info("scheduler stopped", extra={"instance_id": self.heartbeat.instance_id})
        return abandoned


def prepare_schema(engine: Engine, settings: Settings) -> None:
    """Migrate the database to this code's schema, or check that it is there already."""
    if not settings.migrate_on_start:
        require_current_schema(engine)
        return
    before, after = upgrade(engine)
    if before != after:
        logger.info("database schema upgraded", extra={"from": before, "to": after})


async def run_scheduler(settings: Settings) -> None:
    """Run the scheduler process until a stop signal; it exits within the shutdown timeout."""
    engine = get_engine()
    prepare_schema(engine, settings)
    abandoned = await SchedulerProcess(settings, engine).run()
    engine.dispose()
    if abandoned:
        # A job running in a worker thread cannot be interrupted, and the interpreter would
        # wait for it at exit; the stop was promised within the timeout, so leave now.
        logging.shutdown()
        os._exit(0)
