"""The API process: `python -m app.entrypoints.api`."""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

from app.components.backend.main import create_app
from app.entrypoints._startup import exit_if_ports_taken, start_process


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    """Uvicorn re-raises the stop signal once it has shut down; the stop is already done."""


def main() -> None:
    """Serve the API until SIGTERM or SIGINT, then exit 0 like the scheduler."""
    settings = start_process()
    exit_if_ports_taken(settings, api=True, scheduler=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _after_graceful_shutdown)
    # log_config=None keeps uvicorn from replacing the logging set up above.
    uvicorn.run(
        create_app(settings), host=settings.api_host, port=settings.api_port, log_config=None
    )


if __name__ == "__main__":
    main()
