"""A worker process: `python -m app.entrypoints.worker [--queues critical,default]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from sqlalchemy.exc import SQLAlchemyError

from app.components.scheduler.runner import prepare_schema
from app.components.worker.process import QueuesError, parse_queues, run_worker
from app.core.db import get_engine
from app.core.metrics import MetricsAddressUnusable
from app.core.migrations import SchemaError
from app.core.settings import Settings
from app.core.text import first_line
from app.entrypoints._startup import exit_if_taken, listen_error, start_process

# The port a message suggests when the worker's metrics port is taken.
_ANOTHER_PORT = 9467


def main(argv: list[str] | None = None) -> None:
    """Run a worker until SIGTERM or SIGINT; exit 0 after a clean stop."""
    parser = argparse.ArgumentParser(prog="python -m app.entrypoints.worker")
    parser.add_argument(
        "--queues", help="comma-separated queues to serve (critical, default, low); all by default"
    )
    given = parser.parse_args(argv)
    serve(given.queues)


def serve(queues_given: str | None) -> None:
    """Start a worker on the named queues (all when None); exits with a message on bad input."""
    settings = start_process()
    # Procrastinate logs every job's start and end at INFO, beside the project's own line
    # for each (with the run's execution id and job); its warnings and errors are kept.
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    log = logging.getLogger("app.worker")
    try:
        queues = parse_queues(queues_given)
    except QueuesError as error:
        print(f"error: --queues: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    exit_if_metrics_port_taken(settings)
    if not settings.workers_enabled:
        log.warning(
            "WORKERS_ENABLED is off: the scheduler runs the jobs itself, and this worker "
            "only takes runs queued before that"
        )
    try:
        prepare_schema(get_engine(), settings)
        asyncio.run(run_worker(settings, queues))
    except SchemaError as error:
        log.error(f"cannot start: {error}")
        raise SystemExit(1) from None
    except MetricsAddressUnusable as unusable:
        # Taken between the check and the server's start, or not an address here.
        reason = listen_error(
            unusable.host, unusable.port, unusable.error, "WORKER_METRICS_PORT", _ANOTHER_PORT
        )
        log.error(f"cannot start: {reason}")
        raise SystemExit(1) from None
    except SQLAlchemyError as error:
        log.error(f"cannot start: database error: {first_line(error)}")
        raise SystemExit(1) from None


def exit_if_metrics_port_taken(settings: Settings) -> None:
    """Exit with status 1 and what to do when the worker's metrics port is in use."""
    if settings.metrics_enabled and settings.worker_metrics_port:
        exit_if_taken(
            settings.worker_metrics_host,
            settings.worker_metrics_port,
            "WORKER_METRICS_PORT",
            _ANOTHER_PORT,
        )


if __name__ == "__main__":
    main()
