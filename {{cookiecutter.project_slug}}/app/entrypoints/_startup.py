"""What every process does first: load settings or exit with a clear message, then log."""

from __future__ import annotations

import sys

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
