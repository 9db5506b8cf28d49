"""The worker process: one Procrastinate worker per queue it serves, each with its own limit.

One Procrastinate worker takes jobs by priority across all its queues, so a backlog in one
queue would hold the others back. One worker per queue, each with the queue's concurrency
(6, 3 and 1 by default), keeps every queue its share of the process: low is never starved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

from procrastinate import JobContext
from procrastinate.job_context import AbortReason
from sqlalchemy.exc import SQLAlchemyError

from app.components.scheduler.alerts import FailureAlerts, alert_hook
from app.components.scheduler.catalog import code_jobs
from app.components.scheduler.lease import new_instance_id
from app.components.worker import metrics
from app.components.worker.heartbeat import WorkerHeartbeat
from app.components.worker.queue import QUEUES, TASK_NAME, conninfo, procrastinate_app
from app.components.worker.records import RunRecords
from app.components.worker.runs import WorkerRuns
from app.core.db import get_engine, redacted_url
from app.core.enums import WorkerState
from app.core.metrics import serve
from app.core.settings import Settings
from app.core.text import first_line

logger = logging.getLogger("app.worker")

# How long a worker waits before it looks at the queue again after losing the database.
_RESTART_CAP_SECONDS = 10.0


class QueuesError(ValueError):
    """The queues a worker was asked to serve are not the project's."""


def parse_queues(given: str | None) -> tuple[str, ...]:
    """The queues named in `given` (comma-separated), all of them when None or empty."""
    if not given or not given.strip():
        return QUEUES
    names = tuple(dict.fromkeys(name.strip() for name in given.split(",") if name.strip()))
    unknown = [name for name in names if name not in QUEUES]
    if unknown or not names:
        raise QueuesError(
            f"unknown queue(s) {', '.join(map(repr, unknown))}: choose from {', '.join(QUEUES)}"
        )
    return names


async def run_worker(settings: Settings, queues: Sequence[str]) -> None:
    """Run queued runs of `queues` until SIGTERM or SIGINT; running ones get the shutdown
    timeout to end, and are then cancelled and recorded as interrupted."""
    engine = get_engine()
    worker_id = new_instance_id()
    alerts = FailureAlerts(settings.alert_after_consecutive_failures, alert_hook(settings))
    records = RunRecords(conninfo(settings.database_url), worker_id)
    runs = WorkerRuns(engine, records, code_jobs(), alerts)
    concurrency = {queue: settings.worker_concurrency(queue) for queue in queues}
    app = procrastinate_app(settings.database_url, pool_size=sum(concurrency.values()) + 2)

    async def run_execution(context: JobContext, execution_id: str) -> None:
        await runs.run(execution_id, lambda: context.abort_reason() is AbortReason.USER_REQUEST)

    app.task(name=TASK_NAME, pass_context=True)(run_execution)
    serve_metrics(settings, concurrency, runs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pulse = _Pulse(WorkerHeartbeat(engine, worker_id, concurrency), runs)
    beating = asyncio.create_task(pulse.keep_beating(settings.heartbeat_interval_seconds, stop))
    logger.info(
        "worker started",
        extra={
            "worker_id": worker_id,
            "queues": list(queues),
            "concurrency": concurrency,
            "database": redacted_url(engine.url),
        },
    )
    await records.open()
    try:
        await _serve_until_stopped(app, settings, worker_id, concurrency, stop, pulse)
    finally:
        # Also after an error of the worker's own: its heartbeat says it stopped, and its
        # connections are closed rather than left to the server to time out.
        stop.set()
        await beating
        await pulse.last(WorkerState.STOPPED)
        await records.close()
        engine.dispose()
    logger.info("worker stopped", extra={"worker_id": worker_id})


async def _serve_until_stopped(
    app: Any,
    settings: Settings,
    worker_id: str,
    concurrency: dict[str, int],
    stop: asyncio.Event,
    pulse: _Pulse,
) -> None:
    """Serve the queues until `stop`, starting again with backoff after losing the database."""
    delay = 0.0
    while not stop.is_set():
        pulse.state = WorkerState.RUNNING
        failure = await _serve(app, settings, worker_id, concurrency, stop)
        if failure is None:
            return
        pulse.state = WorkerState.RECONNECTING
        metrics.RECONNECTS.inc()
        delay = min(max(delay * 2, 0.5), _RESTART_CAP_SECONDS)
        logger.error(
            "worker lost the database; starting again",
            extra={"error": failure, "retry_in_seconds": delay},
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


def serve_metrics(settings: Settings, concurrency: dict[str, int], runs: WorkerRuns) -> None:
    """Serve `/metrics` on the worker's own port, if metrics are on.

    `MetricsAddressUnusable` if the address cannot be listened on.
    """
    if not settings.metrics_enabled:
        return
    metrics.LOAD.watch(concurrency, lambda: runs.load)
    serve(metrics.REGISTRY, settings.worker_metrics_host, settings.worker_metrics_port, logger)


async def _serve(
    app: Any,
    settings: Settings,
    worker_id: str,
    concurrency: dict[str, int],
    stop: asyncio.Event,
) -> str | None:
    """Serve until `stop`; returns why it could not go on, or None after a stop."""
    try:
        async with app.open_async():
            workers = [
                asyncio.create_task(
                    app.run_worker_async(
                        queues=[queue],
                        concurrency=limit,
                        name=f"{worker_id}/{queue}",
                        install_signal_handlers=False,
                        listen_notify=True,
                        fetch_job_polling_interval=settings.worker_poll_seconds,
                        abort_job_polling_interval=settings.worker_poll_seconds,
                        shutdown_graceful_timeout=settings.shutdown_timeout_seconds,
                        # The project's history is the record; the queue keeps only what waits.
                        delete_jobs="always",
                        # The leader ends the runs of a worker silent for longer
                        # (`history.recover_stalled`).
                        update_heartbeat_interval=settings.heartbeat_interval_seconds,
                        stalled_worker_timeout=settings.heartbeat_stale_after_seconds,
                    )
                )
                for queue, limit in concurrency.items()
            ]
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([stopping, *workers], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            for worker in workers:
                worker.cancel()
            results = await asyncio.gather(*workers, return_exceptions=True)
    except Exception as error:  # noqa: BLE001 - the pool could not open: the database is away
        return _reason(error)
    if stop.is_set():
        return None
    failures = [r for r in results if isinstance(r, BaseException) and not _cancelled(r)]
    return _reason(failures[0]) if failures else "a worker stopped by itself"


class _Pulse:
    """Writes the worker's heartbeat every interval until the stop, and its last state then."""

    def __init__(self, heartbeat: WorkerHeartbeat, runs: WorkerRuns) -> None:
        self.heartbeat = heartbeat
        self.runs = runs
        self.state = WorkerState.RUNNING
        self._failing = False

    async def keep_beating(self, interval: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._beat(self.state)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
        # Its runs get the shutdown timeout to end: others see it stopping meanwhile.
        await self._beat(WorkerState.STOPPING)

    async def last(self, state: WorkerState) -> None:
        await self._beat(state)

    async def _beat(self, state: WorkerState) -> None:
        try:
            await asyncio.to_thread(self.heartbeat.beat, state, len(self.runs.running))
        except SQLAlchemyError as error:
            metrics.HEARTBEAT_FAILURES.inc()
            # Once per outage: the heartbeat's age tells the rest.
            if not self._failing:
                logger.warning(
                    "worker heartbeat not written: the database did not answer",
                    extra={"error": first_line(error)},
                )
            self._failing = True
            return
        if self._failing:
            logger.info("worker heartbeat written again")
        self._failing = False


def _reason(error: BaseException) -> str:
    """Why, in one line: the error's first line, then its cause's (Procrastinate's
    ConnectorException says only "Database error.", its cause says which)."""
    said: list[str] = []
    found: BaseException | None = error
    while found is not None and len(said) < 2:
        said.append(first_line(found).rstrip("."))
        found = found.__cause__
    return ": ".join(said)


def _cancelled(result: BaseException) -> bool:
    return isinstance(result, asyncio.CancelledError)
