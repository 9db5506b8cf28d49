"""Each job outcome is one log line; an expected failure carries no traceback."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from app.components.scheduler import main
from app.components.scheduler.events import JOB_OUTCOME_EVENTS
from app.components.scheduler.main import create_scheduler
from app.core.db import utcnow
from app.core.errors import JobError
from app.core.settings import Settings


def fails_expectedly() -> None:
    raise JobError("upstream is down")


def fails_with_a_bug() -> None:
    raise ZeroDivisionError("division by zero")


def succeeds() -> int:
    return 42


async def run_once(settings: Settings, engine: Engine, func: object) -> None:
    # Only the probe job: no other job's outcome can wake the test up early.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(main, "JOBS", ())
        scheduler = create_scheduler(settings, engine)
    scheduler.start()
    done = asyncio.Event()
    scheduler.add_listener(lambda _event: done.set(), JOB_OUTCOME_EVENTS)
    scheduler.add_job(func, "date", run_date=utcnow() + timedelta(milliseconds=50), id="probe")
    try:
        await asyncio.wait_for(done.wait(), timeout=10)
    finally:
        scheduler.shutdown(wait=False)


def job_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "app.scheduler.jobs" and getattr(r, "job_id", None) == "probe"
    ]


async def test_expected_failure_is_one_line_without_traceback(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await run_once(settings, engine, fails_expectedly)
    [record] = job_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "job failed: upstream is down"
    assert not hasattr(record, "traceback")


async def test_unexpected_failure_keeps_its_traceback(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await run_once(settings, engine, fails_with_a_bug)
    [record] = job_records(caplog)
    assert record.getMessage() == "job failed: ZeroDivisionError: division by zero"
    assert "fails_with_a_bug" in getattr(record, "traceback", "")


async def test_success_is_logged_with_its_result(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await run_once(settings, engine, succeeds)
    [record] = job_records(caplog)
    assert record.getMessage() == "job succeeded"
    assert getattr(record, "result", None) == "42"
