"""`make run`: the service's processes (`PROCESSES`) on one machine, stopped together.

Each runs exactly as in production (its own process, the database between them). They
start and stop as one: if one cannot start or exits, the others are stopped too and `make
run` fails with the reason, rather than leaving half a service running.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from types import FrameType

from app.entrypoints._startup import exit_if_ports_taken, start_process
{%- if cookiecutter.workers == "procrastinate" %}
from app.entrypoints.worker import exit_if_metrics_port_taken
{%- endif %}

logger = logging.getLogger("app.local")

PROCESSES = {
    "api": "app.entrypoints.api",
    "scheduler": "app.entrypoints.scheduler",
{%- if cookiecutter.workers == "procrastinate" %}
    "worker": "app.entrypoints.worker",
{%- endif %}
}
STOP_TIMEOUT_SECONDS = 10


def _the(name: str) -> str:
    """'the API', 'the scheduler'."""
    return f"the {'API' if name == 'api' else name}"


def _listed(names: Iterable[str]) -> str:
    """'the API, the scheduler and the worker'."""
    *rest, last = [_the(name) for name in names]
    return f"{', '.join(rest)} and {last}" if rest else last


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
    """Start the processes; stop them all on Ctrl-C or SIGTERM (exit 0), or when one exits
    (exit 1)."""
    settings = start_process()
    exit_if_ports_taken(settings, api=True, scheduler=True)
{%- if cookiecutter.workers == "procrastinate" %}
    exit_if_metrics_port_taken(settings)
{%- endif %}
    stopping = False

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    # SIGHUP too: the children run in sessions of their own, so a closed terminal reaches
    # only this process, which must stop them.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)

    logger.info(
        f"starting {_listed(PROCESSES)}; Ctrl-C stops them all",
        extra={
            "api": f"http://{settings.api_host}:{settings.api_port}",
            "docs": "/docs",
            "readiness": "/health/ready",
        },
    )
    # Own sessions keep a terminal's Ctrl-C away from the children: this process forwards
    # exactly one SIGTERM to each, so each takes its graceful path once.
    children = {
        name: subprocess.Popen([sys.executable, "-m", module], start_new_session=True)
        for name, module in PROCESSES.items()
    }
    exited: tuple[str, int] | None = None
    try:
        while not stopping and exited is None:
            exited = next(
                (
                    (name, code)
                    for name, child in children.items()
                    if (code := child.poll()) is not None
                ),
                None,
            )
            if exited is None:
                time.sleep(0.2)
    finally:
        _stop(children)
    if exited is not None:
        name, code = exited
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        logger.error(
            f"{_the(name)} {how}, so the rest were stopped too; anything it said is above",
            extra={"child": name, "status": code},
        )
        raise SystemExit(1)


if __name__ == "__main__":
    main()
