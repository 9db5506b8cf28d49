"""What every process does first: load settings or exit with a clear message, then log."""

from __future__ import annotations

import errno
import socket
import sys

from app import ENV_PREFIX
from app.core.log import configure_logging
from app.core.settings import Settings, SettingsError, get_settings


def start_process() -> Settings:
    """Validated settings with logging configured; exits with status 2 on invalid settings."""
    try:
        settings = get_settings()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def exit_if_ports_taken(settings: Settings, *, api: bool, scheduler: bool) -> None:
    """Exit with status 1 and what to do when an address a process listens on is in use.

    Checked before anything starts, so `make run` never leaves a scheduler running beside
    an API that could not start (whose jobs would then call whatever holds the port).
    """
    if api:
        exit_if_taken(settings.api_host, settings.api_port, "API_PORT", 8080)
    if scheduler and settings.metrics_enabled and settings.scheduler_metrics_port:
        exit_if_taken(
            settings.scheduler_metrics_host,
            settings.scheduler_metrics_port,
            "SCHEDULER_METRICS_PORT",
            9466,
        )


def listen_error(host: str, port: int, error: OSError, setting: str, example: int) -> str:
    """What to print when `host:port` cannot be listened on: the reason, and the way out."""
    if error.errno == errno.EADDRINUSE:
        reason = f"port {port} on {host} is already in use by another process"
    else:
        reason = f"cannot listen on {host}:{port}: {error.strerror}"
    return (
        f"{reason}; stop it, or choose another port with "
        f"{ENV_PREFIX}{setting}={example} in .env (or in the environment)"
    )


def exit_if_taken(host: str, port: int, setting: str, example: int) -> None:
    """Exit with status 1 and what to do if `host:port` cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port left in TIME_WAIT by a previous run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            print(f"error: {listen_error(host, port, error, setting, example)}", file=sys.stderr)
            raise SystemExit(1) from None
