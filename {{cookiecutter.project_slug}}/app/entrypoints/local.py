"""`make run`: the API and the scheduler as two processes on one machine, stopped together.

Each runs exactly as in production (its own process, the database between them). If one
exits, the other keeps running, so a killed scheduler shows up as unhealthy in the API, as it
would in a deployment.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from types import FrameType

from app.entrypoints._startup import start_process

PROCESSES = {"api": "app.entrypoints.api", "scheduler": "app.entrypoints.scheduler"}
STOP_TIMEOUT_SECONDS = 10


def main() -> None:
    """Start both processes; on Ctrl-C or SIGTERM stop both and exit 0."""
    settings = start_process()
    # Own sessions keep a terminal's Ctrl-C away from the children: this process forwards
    # exactly one SIGTERM to each, so both take their graceful path once.
    children = {
        name: subprocess.Popen([sys.executable, "-m", module], start_new_session=True)
        for name, module in PROCESSES.items()
    }
    print(
        f"API on http://{settings.api_host}:{settings.api_port} "
        f"(docs at /docs, readiness at /health/ready); scheduler running. Ctrl-C stops both.",
        file=sys.stderr,
    )
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    running = dict(children)
    while running and not stopping:
        for name, child in list(running.items()):
            code = child.poll()
            if code is not None:
                del running[name]
                print(f"{name} exited with status {code}", file=sys.stderr)
        time.sleep(0.2)

    for child in running.values():
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for name, child in running.items():
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(
                f"{name} did not stop within {STOP_TIMEOUT_SECONDS} s; killing it", file=sys.stderr
            )
            child.kill()
            child.wait()
    # Without a stop request the loop only ends once every child has exited on its own.
    raise SystemExit(0 if stopping else 1)


if __name__ == "__main__":
    main()
