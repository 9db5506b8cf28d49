"""The scheduler process: `python -m app.entrypoints.scheduler`."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError

from app.components.scheduler.main import JobDefinitionError
from app.components.scheduler.runner import run_scheduler
from app.core.metrics import MetricsAddressUnusable
from app.core.migrations import SchemaError
from app.core.text import first_line
from app.entrypoints._startup import exit_if_ports_taken, listen_error, start_process


def main() -> None:
    """Run the scheduler until SIGTERM or SIGINT; exit 0 after a clean stop."""
    settings = start_process()
    exit_if_ports_taken(settings, api=False, scheduler=True)
    try:
        asyncio.run(run_scheduler(settings))
    except JobDefinitionError as error:
        logging.getLogger("app.scheduler").error(f"cannot start: {error}")
        raise SystemExit(2) from None
    except SchemaError as error:
        logging.getLogger("app.scheduler").error(f"cannot start: {error}")
        raise SystemExit(1) from None
    except MetricsAddressUnusable as unusable:
        # Taken between the check above and the server's start, or not an address here.
        reason = listen_error(
            unusable.host, unusable.port, unusable.error, "SCHEDULER_METRICS_PORT", 9466
        )
        logging.getLogger("app.scheduler").error(f"cannot start: {reason}")
        raise SystemExit(1) from None
    except SQLAlchemyError as error:
        reason = first_line(error)
        logging.getLogger("app.scheduler").error(f"cannot start: database error: {reason}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
