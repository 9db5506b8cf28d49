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


def exit_if_port_taken(settings: Settings) -> None:
    """Exit with status 1 and what to do when the API's address is already in use.

    Checked before anything starts, so `make run` never leaves a scheduler running beside
    an API that could not start (whose jobs would then call whatever holds the port).
    """
    host, port = settings.api_host, settings.api_port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: a port left in TIME_WAIT by a previous run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                reason = f"port {port} on {host} is already in use by another process"
            else:
                reason = f"cannot listen on {host}:{port}: {error.strerror}"
            print(
                f"error: {reason}; stop it, or choose another port with "
                f"{ENV_PREFIX}API_PORT=8080 in .env (or in the environment)",
                file=sys.stderr,
            )
            raise SystemExit(1) from None
