"""Every run through the real scheduler and database: history, retries, timeouts, overlap,
misfires, interruptions, logs and alerts."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from app.components.scheduler import claims, main
from app.components.scheduler.alerts import FailureAlert
from app.components.scheduler.definition import (
    Delays,
    Exponential,
    Fixed,
    Retry,
    ScheduledJob,
)
from app.components.scheduler.execution import current_runtime
from app.components.scheduler.history import (
    HistoryRecorder,
    add_planned,
    claim_planned,
    execution_row,
    mark_interrupted,
    new_execution_id,
)
from app.components.scheduler.main import create_scheduler
from app.core.db import session_scope, utcnow
from app.core.enums import UNFINISHED, ExecutionStatus, TriggerKind
from app.core.errors import JobError
from app.core.models import Job, JobExecution
from app.core.schedules import Interval, Once
from app.core.settings import Settings
from tests.helpers import stop, wait_until

calls: list[float] = []


def succeed() -> int:
    calls.append(time.monotonic())
    return 42


def fail_expectedly() -> None:
    calls.append(time.monotonic())
    raise JobError("upstream is down")


def fail_with_a_bug() -> None:
    raise ZeroDivisionError("division by zero")


async def sleep_long() -> None:
    calls.append(time.monotonic())
    await asyncio.sleep(30)


def block_half_a_second() -> None:
    calls.append(time.monotonic())
    time.sleep(0.5)


def soon(ms: int = 500) -> Once:
    # A one-time job already past when the scheduler registers it is never run (as after a
    # restart), so leave room for a slow start on a loaded machine.
    return Once(at=utcnow() + timedelta(milliseconds=ms))


def flaky(attempts: int) -> ScheduledJob:
    """A job that fails every time, retried 100 ms after each failure up to `attempts`."""
    return ScheduledJob(
        id="flaky",
        name="Flaky",
        func=fail_expectedly,
        schedule=soon(),
        retry=Retry(attempts=attempts, backoff=Fixed(timedelta(milliseconds=100))),
    )


def executions(engine: Engine) -> list[JobExecution]:
    current_runtime().recorder.flush()
    with session_scope(engine) as session:
        rows = session.scalars(select(JobExecution)).all()
    return sorted(rows, key=lambda row: (row.scheduled_at, row.attempt))


async def run_until(
    settings: Settings,
    engine: Engine,
    jobs: tuple[ScheduledJob, ...],
    done: Callable[[list[JobExecution]], bool],
    timeout: float = 15,
) -> list[JobExecution]:
    """Run a real scheduler with `jobs` until the history satisfies `done`; returns that history.

    Stopping the scheduler afterwards interrupts any run still going, as it should.
    """
    calls.clear()
    scheduler = create_scheduler(jobs, settings, engine)
    scheduler.start()
    deadline = time.monotonic() + timeout
    try:
        while not done(rows := executions(engine)):
            if time.monotonic() > deadline:
                pytest.fail(f"history never reached the expected state: {rows}")
            await asyncio.sleep(0.05)
    finally:
        await stop(scheduler)
        await asyncio.sleep(0.05)
    return rows


def finished(count: int) -> Callable[[list[JobExecution]], bool]:
    return lambda rows: sum(r.status not in UNFINISHED for r in rows) >= count


async def test_a_run_is_recorded_from_start_to_end(settings: Settings, engine: Engine) -> None:
    job = ScheduledJob(id="ok", name="Ok", func=succeed, schedule=soon())
    [row] = await run_until(settings, engine, (job,), finished(1))
    assert row.job_id == "ok"
    assert row.status == ExecutionStatus.SUCCEEDED
    assert row.trigger_kind == TriggerKind.SCHEDULE
    assert row.attempt == 1
    assert row.queue == "default"
    assert row.instance_id == current_runtime().recorder.instance_id
    assert row.started_at is not None
    assert row.finished_at is not None
    assert row.scheduled_at <= row.started_at <= row.finished_at
    assert row.duration_ms is not None
    assert 0 <= row.duration_ms < 1000
    assert row.error_type is None


async def test_running_row_is_written_before_the_job_ends(
    settings: Settings, engine: Engine
) -> None:
    job = ScheduledJob(id="slow", name="Slow", func=block_half_a_second, schedule=soon())
    rows = await run_until(settings, engine, (job,), lambda rows: any(r.started_at for r in rows))
    assert [r.status for r in rows] == [ExecutionStatus.RUNNING]
    assert rows[0].finished_at is None


async def test_expected_failure_is_one_line_without_traceback(
    settings: Settings,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    job = ScheduledJob(id="down", name="Down", func=fail_expectedly, schedule=soon())
    [row] = await run_until(settings, engine, (job,), finished(1))
    assert (row.status, row.error_type, row.error_message) == (
        ExecutionStatus.FAILED,
        "JobError",
        "upstream is down",
    )
    assert row.traceback is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["job failed: upstream is down"]
    assert getattr(errors[0], "execution_id", None) == row.id
    assert not hasattr(errors[0], "traceback")


async def test_unexpected_failure_keeps_its_traceback(
    settings: Settings,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = ScheduledJob(id="bug", name="Bug", func=fail_with_a_bug, schedule=soon())
    [row] = await run_until(settings, engine, (job,), finished(1))
    assert row.error_type == "ZeroDivisionError"
    assert row.traceback is not None
    assert "fail_with_a_bug" in row.traceback
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "fail_with_a_bug" in getattr(record, "traceback", "")


@pytest.mark.parametrize(
    ("backoff", "expected_gaps"),
    [
        (Fixed(timedelta(milliseconds=300)), [0.3, 0.3]),
        (Delays([timedelta(milliseconds=200), timedelta(milliseconds=600)]), [0.2, 0.6]),
        (
            Exponential(
                base=timedelta(milliseconds=200),
                factor=3,
                cap=timedelta(milliseconds=500),
                jitter=0,
            ),
            [0.2, 0.5],
        ),
    ],
    ids=["fixed", "explicit-delays", "exponential-capped"],
)
async def test_retries_wait_the_configured_delays(
    settings: Settings,
    engine: Engine,
    backoff: Fixed | Delays | Exponential,
    expected_gaps: list[float],
) -> None:
    job = ScheduledJob(
        id="flaky",
        name="Flaky",
        func=fail_expectedly,
        schedule=soon(),
        retry=Retry(attempts=3, backoff=backoff),
    )
    rows = await run_until(settings, engine, (job,), finished(3))
    assert [(r.attempt, r.trigger_kind, r.status) for r in rows] == [
        (1, TriggerKind.SCHEDULE, ExecutionStatus.FAILED),
        (2, TriggerKind.RETRY, ExecutionStatus.FAILED),
        (3, TriggerKind.RETRY, ExecutionStatus.FAILED),
    ]
    # Each retry is planned the configured delay after its failed attempt ended (the cap
    # shows: 0.5 s, not 0.6 s), and starts no earlier than planned. How late it starts
    # depends on the machine's load, so only a stall of seconds counts as a fault.
    planned = [
        (later.scheduled_at - earlier.finished_at).total_seconds()
        for earlier, later in itertools.pairwise(rows)
        if earlier.finished_at is not None
    ]
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls)]
    for delay, gap, expected in zip(planned, gaps, expected_gaps, strict=True):
        assert expected <= delay < expected + 0.08, (planned, expected_gaps)
        assert expected <= gap < expected + 2, (gaps, expected_gaps)
    assert all(r.started_at is not None and r.started_at >= r.scheduled_at for r in rows)
    # No fourth attempt: the job is out of retries.
    await asyncio.sleep(0.8)
    assert len(calls) == 3


async def test_a_failed_attempt_and_its_retry_are_queued_as_one_batch(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were the writer thread free to commit the failed attempt's end alone, a crash before
    # the next commit would leave the failure recorded and its retry lost. Right after each
    # end is queued, another thread tries the lock the writer takes its batches under.
    takeable: list[bool] = []
    queue_end = HistoryRecorder.finished

    def queue_end_then_probe(recorder: HistoryRecorder, *args: Any, **kwargs: Any) -> None:
        queue_end(recorder, *args, **kwargs)

        def probe() -> None:
            taken = recorder._lock.acquire(blocking=False)
            if taken:
                recorder._lock.release()
            takeable.append(taken)

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()

    monkeypatch.setattr(HistoryRecorder, "finished", queue_end_then_probe)
    rows = await run_until(settings, engine, (flaky(2),), finished(2))
    assert [(r.attempt, r.status) for r in rows] == [
        (1, ExecutionStatus.FAILED),
        (2, ExecutionStatus.FAILED),
    ]
    assert takeable == [False, False]


def test_exponential_jitter_stays_within_its_bound() -> None:
    backoff = Exponential(base=timedelta(seconds=10), cap=timedelta(seconds=60), jitter=0.5)
    for retry, base in ((1, 10), (2, 20), (3, 40), (4, 60), (9, 60)):
        for _ in range(50):
            assert base <= backoff.delay_before(retry).total_seconds() <= base * 1.5


async def test_timeout_cancels_the_job_and_is_recorded(settings: Settings, engine: Engine) -> None:
    job = ScheduledJob(
        id="stuck",
        name="Stuck",
        func=sleep_long,
        schedule=soon(),
        timeout=timedelta(milliseconds=300),
    )
    [row] = await run_until(settings, engine, (job,), finished(1))
    assert row.status == ExecutionStatus.TIMED_OUT
    assert row.error_type == "TimeoutError"
    assert row.error_message == "timed out after 0:00:00.300000"
    assert row.duration_ms is not None
    assert 300 <= row.duration_ms < 1000


async def test_overlapping_run_is_skipped_and_recorded(settings: Settings, engine: Engine) -> None:
    job = ScheduledJob(
        id="busy",
        name="Busy",
        func=block_half_a_second,
        schedule=Interval(seconds=0.2),
    )
    rows = await run_until(
        settings,
        engine,
        (job,),
        lambda rows: any(r.status == ExecutionStatus.SKIPPED for r in rows),
    )
    skipped = [r for r in rows if r.status == ExecutionStatus.SKIPPED]
    assert skipped[0].error_message == "the previous run was still going (max_instances reached)"
    assert skipped[0].started_at is None
    # Never two runs at once.
    assert len(calls) <= 2


async def test_missed_run_is_recorded(settings: Settings, engine: Engine) -> None:
    job = ScheduledJob(
        id="late",
        name="Late",
        func=succeed,
        schedule=Interval(hours=1),
        misfire_grace_time=timedelta(seconds=1),
    )
    create_scheduler((job,), settings, engine)
    # As if the scheduler had been down when the run fell due, a minute ago.
    with session_scope(engine) as session:
        session.get_one(Job, "late").next_run_at = utcnow() - timedelta(minutes=1)
    scheduler = create_scheduler((job,), settings, engine)
    calls.clear()
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while not any(r.status == ExecutionStatus.MISSED for r in executions(engine)):
            assert time.monotonic() < deadline, "no missed run recorded"
            await asyncio.sleep(0.05)
    finally:
        await stop(scheduler)
    [row] = executions(engine)
    assert row.error_message == "later than the misfire grace time allows (0:00:01)"
    assert row.started_at is None
    assert calls == []


def test_runs_left_running_by_a_dead_scheduler_are_marked_interrupted(engine: Engine) -> None:
    started = execution_row("job", "default", utcnow(), ExecutionStatus.RUNNING, epoch=1)
    started["started_at"] = utcnow()
    # Claimed ahead of its time; the scheduler died before the run started (or said so).
    claimed = execution_row("job", "default", utcnow(), ExecutionStatus.RUNNING, epoch=1)
    with session_scope(engine) as session:
        session.execute(insert(JobExecution), [started, claimed])
    assert mark_interrupted(engine) == 2
    with session_scope(engine) as session:
        ran = session.get_one(JobExecution, started["id"])
        maybe = session.get_one(JobExecution, claimed["id"])
    assert (ran.status, maybe.status) == (ExecutionStatus.INTERRUPTED,) * 2
    assert ran.error_message == "the scheduler stopped or died during the run"
    assert maybe.error_message is not None
    assert maybe.error_message.endswith("before it recorded the start: it may not have run")
    assert ran.finished_at is not None
    assert mark_interrupted(engine) == 0


async def test_a_clean_stop_gives_back_the_claims_of_runs_not_started(
    settings: Settings, engine: Engine
) -> None:
    calls.clear()
    job = ScheduledJob(id="later", name="Later", func=succeed, schedule=soon(2000))
    scheduler = create_scheduler((job,), settings, engine)
    scheduler.start()
    runtime = current_runtime()
    await wait_until(lambda: bool(runtime.waiting), 10, "the run to be claimed ahead")
    [claimed] = executions(engine)
    assert (claimed.status, claimed.started_at) == (ExecutionStatus.RUNNING, None)
    await stop(scheduler)
    # The claim is gone and the job's next run is that time again: the next leader runs it.
    assert executions(engine) == []
    with session_scope(engine) as session:
        assert session.get_one(Job, "later").next_run_at == claimed.scheduled_at
    again = create_scheduler((job,), settings, engine)
    again.start()
    try:
        await wait_until(
            lambda: [r.status for r in executions(engine)] == [ExecutionStatus.SUCCEEDED],
            10,
            "the run after the restart",
        )
    finally:
        await stop(again)
    assert len(calls) == 1


def pending_run(engine: Engine, job_id: str) -> str:
    """A manual run of `job_id` waiting to be claimed, as the API records one."""
    execution_id = new_execution_id()
    with session_scope(engine) as session:
        add_planned(
            session,
            job_id,
            "default",
            execution_id=execution_id,
            trigger_kind=TriggerKind.MANUAL,
            arguments=None,
            retry_of=None,
        )
    return execution_id


async def test_a_planned_run_the_limit_skips_records_no_start(
    settings: Settings, engine: Engine
) -> None:
    job = ScheduledJob(id="busy", name="Busy", func=sleep_long, schedule=soon())
    scheduler = create_scheduler((job,), settings, engine)
    scheduler.start()
    runtime = current_runtime()
    try:
        await wait_until(lambda: runtime.active["busy"] == 1, 10, "the scheduled run to start")
        manual = pending_run(engine, "busy")
        runtime.plan(manual, "busy", utcnow())
        await wait_until(
            lambda: any(
                row.id == manual and row.status == ExecutionStatus.SKIPPED
                for row in executions(engine)
            ),
            10,
            "the manual run to be skipped",
        )
    finally:
        await stop(scheduler)
    [skipped] = [row for row in executions(engine) if row.id == manual]
    # It never ran: the history shows no start for it.
    assert skipped.started_at is None


async def test_a_stop_during_a_planned_claim_gives_the_run_back_for_the_next_leader(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, go_on, committed = threading.Event(), threading.Event(), threading.Event()

    def slow_claim(*args: Any) -> Any:
        entered.set()
        go_on.wait(10)
        try:
            return claim_planned(*args)
        finally:
            committed.set()

    monkeypatch.setattr(claims, "claim_planned", slow_claim)
    calls.clear()
    job = ScheduledJob(id="once", name="Once", func=succeed, schedule=soon(60_000))
    scheduler = create_scheduler((job,), settings, engine)
    scheduler.start()
    runtime = current_runtime()
    manual = pending_run(engine, "once")
    try:
        runtime.plan(manual, "once", utcnow())
        await wait_until(entered.is_set, 10, "the claim to begin")
        # The stop cancels the claimer while the claim is in its thread, which then commits.
        runtime.stop_claiming()
        go_on.set()
        await wait_until(committed.is_set, 10, "the claim to commit")

        def given_back() -> bool:
            [row] = [row for row in executions(engine) if row.id == manual]
            return row.status == ExecutionStatus.PENDING

        await wait_until(given_back, 10, "the claim to be given back")
    finally:
        go_on.set()
        await stop(scheduler)
    monkeypatch.undo()
    # Pending again, not left claimed for the next leader to mark interrupted: it runs there.
    again = create_scheduler((job,), settings, engine)
    again.start()
    try:
        await wait_until(
            lambda: (
                [r.status for r in executions(engine) if r.id == manual]
                == [ExecutionStatus.SUCCEEDED]
            ),
            10,
            "the manual run on the next scheduler",
        )
    finally:
        await stop(again)
    assert len(calls) == 1


async def test_stopping_the_scheduler_interrupts_a_coroutine_run(
    settings: Settings, engine: Engine
) -> None:
    job = ScheduledJob(id="stuck", name="Stuck", func=sleep_long, schedule=soon())
    await run_until(settings, engine, (job,), lambda rows: any(r.started_at for r in rows))
    [row] = executions(engine)
    assert row.status == ExecutionStatus.INTERRUPTED
    assert row.error_message == "cancelled: the scheduler stopped during the run"


async def test_alert_after_consecutive_failures(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts: list[FailureAlert] = []

    async def capture(alert: FailureAlert) -> None:
        alerts.append(alert)

    monkeypatch.setattr(main, "alert_hook", lambda _settings: capture)
    rows = await run_until(settings, engine, (flaky(4),), finished(4))
    assert len(rows) == 4
    # Three in a row (the default threshold) raise exactly one alert.
    assert [(a.job_id, a.consecutive_failures, a.error) for a in alerts] == [
        ("flaky", 3, "upstream is down")
    ]
    assert alerts[0].execution_id == rows[2].id
