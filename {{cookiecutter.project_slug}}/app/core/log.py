"""Logging: readable lines on a terminal, one JSON object per line everywhere else.

Context goes in `extra={...}`; both formats show it, so a message stays short and the
values stay machine-readable.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, Literal

from app.core.redact import redact_urls
from app.core.text import one_line
from app.core.times import iso_utc

# Attributes every LogRecord has; anything else on a record came from `extra=`. Uvicorn adds
# `color_message`, a copy of the message with terminal colour codes.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",
}


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}


def _shown(value: Any) -> Any:
    """A field's value as a log line writes it: times in the one ISO form, others as text."""
    return iso_utc(value) if isinstance(value, datetime) else str(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as a single JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": iso_utc(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extra_fields(record),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return redact_urls(json.dumps(payload, default=_shown))


class ConsoleFormatter(logging.Formatter):
    """Formats a record as `time level logger message key=value ...`, one line per record.

    Only a traceback, which the service writes itself, spans lines.
    """

    def format(self, record: logging.LogRecord) -> str:
        # Local time: this format is for a person at a terminal.
        clock = time.strftime("%H:%M:%S", time.localtime(record.created))
        context = " ".join(f"{k}={one_line(_shown(v))}" for k, v in _extra_fields(record).items())
        line = f"{clock} {record.levelname:<7} {record.name}: {one_line(record.getMessage())}"
        if context:
            line = f"{line}  {context}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return redact_urls(line)


def configure_logging(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> None:
    """Send every logger's records to stderr in the chosen format."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Uvicorn installs its own handlers; route its records through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # APScheduler logs two lines per job at every start; "scheduler started" lists the jobs.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)
    # Its executor logs every run and each cancellation with a traceback; the project's job
    # wrapper logs each start and outcome once, with the execution id.
    logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
    # httpx logs every request's full URL at INFO, a webhook's secret path included; the
    # jobs and the alert hook log their own outcomes.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Alembic describes its set-up at every start; the scheduler logs the upgrade it made.
    logging.getLogger("alembic").setLevel(logging.WARNING)
