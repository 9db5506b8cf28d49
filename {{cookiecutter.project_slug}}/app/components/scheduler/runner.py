"""Runs the scheduler until SIGTERM or SIGINT, writing a heartbeat as it goes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from sqlalchemy.exc import SQLAlchemyError

from app.components.scheduler.heartbeat import Heartbeat
from app.components.scheduler.main import create_scheduler
from app.core.db import create_db_engine, init_db, redacted_url
from app.core.settings import Settings

logger = logging.getLogger("app.scheduler")


async def _beat(heartbeat: Heartbeat, state: str, job_count: int) -> None:
    # The database call blocks, so it runs in a thread and leaves the event loop to the jobs.
    try:
        await asyncio.to_thread(heartbeat.beat, state, job_count)
    except SQLAlchemyError as error:
        logger.warning("heartbeat not recorded", extra={"error": str(error).splitlines()[0]})


async def run_scheduler(settings: Settings) -> None:
    """Start the scheduler, beat until a stop signal arrives, then shut down cleanly."""
    engine = create_db_engine(settings.database_url)
    init_db(engine)
    scheduler = create_scheduler(settings, engine)
    heartbeat = Heartbeat(engine)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    scheduler.start()
    job_ids = [job.id for job in scheduler.get_jobs()]
    job_count = len(job_ids)
    logger.info(
        "scheduler started",
        extra={
            "instance_id": heartbeat.instance_id,
            "database": redacted_url(engine.url),
            "timezone": settings.timezone,
            "jobs": job_ids,
        },
    )
    while not stop.is_set():
        with contextlib.suppress(SQLAlchemyError):
            job_count = len(await asyncio.to_thread(scheduler.get_jobs))
        await _beat(heartbeat, "running", job_count)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.heartbeat_interval_seconds)

    logger.info("scheduler stopping", extra={"instance_id": heartbeat.instance_id})
    scheduler.shutdown(wait=False)
    # Give cancelled job coroutines one turn of the loop to unwind.
    await asyncio.sleep(0)
    await _beat(heartbeat, "stopped", job_count)
    engine.dispose()
    logger.info("scheduler stopped", extra={"instance_id": heartbeat.instance_id})
