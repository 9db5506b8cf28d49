"""`make run`: the API and the scheduler as two processes on one machine, stopped together.

Each runs exactly as in production (its own process, the database between them). If one
exits, the other keeps running, so a killed scheduler shows up as unhealthy in the API, as it
would in a deployment.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from types import FrameType

from app.entrypoints._startup import start_process

logger = logging.getLogger("app.local")

PROCESSES = {"api": "app.entrypoints.api", "scheduler": "app.entrypoints.scheduler"}
STOP_TIMEOUT_SECONDS = 10


def _stop(children: dict[str, subprocess.Popen[bytes]]) -> None:
    running = {name: child for name, child in children.items() if child.poll() is None}
    for child in running.values():
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for name, child in running.items():
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning(
                "process did not stop in time; killing it",
                extra={"child": name, "timeout_seconds": STOP_TIMEOUT_SECONDS},
            )
            child.kill()
            child.wait()


def main() -> None:
    """Start both processes; on Ctrl-C or SIGTERM stop both and exit 0."""
    settings = start_process()
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    logger.info(
        "starting the API and the scheduler; Ctrl-C stops both",
        extra={
            "api": f"http://{settings.api_host}:{settings.api_port}",
            "docs": "/docs",
            "readiness": "/health/ready",
        },
    )
    # Own sessions keep a terminal's Ctrl-C away from the children: this process forwards
    # exactly one SIGTERM to each, so both take their graceful path once.
    children = {
        name: subprocess.Popen([sys.executable, "-m", module], start_new_session=True)
        for name, module in PROCESSES.items()
    }
    try:
        watching = dict(children)
        while watching and not stopping:
            for name, child in list(watching.items()):
                code = child.poll()
                if code is not None:
                    del watching[name]
                    logger.warning("process exited", extra={"child": name, "status": code})
            time.sleep(0.2)
    finally:
        _stop(children)
    # Without a stop request the loop only ends once every child has exited on its own.
    raise SystemExit(0 if stopping else 1)


if __name__ == "__main__":
    main()
