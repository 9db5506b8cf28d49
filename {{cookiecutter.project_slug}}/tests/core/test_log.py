"""Both log formats: one record is one line whatever the input, and times in one form."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone

from app.core.log import ConsoleFormatter, JsonFormatter


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("app.test", logging.WARNING, __file__, 1, message, None, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_console_lines_cannot_be_forged_by_input() -> None:
    forged = "x\n12:00:00 ERROR   app.scheduler: forged\r\x1b[2K"
    line = ConsoleFormatter().format(record(f"job {forged} failed", name_given=forged))
    assert "\n" not in line
    assert "\r" not in line
    assert "\x1b" not in line
    assert "job x\\n12:00:00 ERROR   app.scheduler: forged\\r\\x1b[2K failed" in line
    assert "name_given=x\\n12:00:00" in line


def test_json_lines_write_time_in_utc_with_a_z() -> None:
    moment = datetime(2026, 1, 31, 7, 0, tzinfo=timezone(timedelta(hours=1)))
    payload = json.loads(JsonFormatter().format(record("started", next_run_at=moment)))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", payload["time"])
    assert payload["next_run_at"] == "2026-01-31T06:00:00.000000Z"
    line = ConsoleFormatter().format(record("started", next_run_at=moment))
    assert "next_run_at=2026-01-31T06:00:00.000000Z" in line
