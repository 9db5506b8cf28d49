"""Runs on worker processes, against the real database and real processes: a scheduler that
queues its runs, and two workers that run them."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from app import ENV_PREFIX
from app.components.management.service import Management
from app.components.scheduler.alerts import FailureAlerts, log_alert
from app.components.scheduler.catalog import sync_code_jobs
from app.components.scheduler.claims import SKIP_REASON
from app.components.scheduler.dispatch import Deferral
from app.components.scheduler.history import execution_row, queue_runs
from app.components.worker.process import QueuesError, parse_queues
from app.components.worker.queue import WorkerQueue, conninfo
from app.components.worker.records import RunRecords
from app.components.worker.runs import Started, WorkerRuns
from app.core.db import utcnow, write_session, write_transaction
from app.core.enums import ExecutionStatus, TriggerKind, WorkerState
from app.core.models import JobExecution, WorkerProcess
from app.core.settings import Settings
from tests.conftest import Launcher
from tests.helpers import wait_for
from tests.worker.processes import JOBS

ON = {f"{ENV_PREFIX}WORKERS_ENABLED": "true"}


def runs_of(engine: Engine, job_id: str) -> list[JobExecution]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(JobExecution)
                .where(JobExecution.job_id == job_id)
                .order_by(JobExecution.attempt, JobExecution.scheduled_at)
            )
        )


def ended(engine: Engine, job_id: str) -> list[JobExecution]:
    return [run for run in runs_of(engine, job_id) if ExecutionStatus(run.status).is_final]


def test_two_workers_run_the_runs_with_retries_and_timeouts_as_the_scheduler_would(
    start: Launcher, engine: Engine, settings: Settings
) -> None:
    scheduler = start("tests.worker.processes", TEST_PROCESS_ROLE="scheduler", **ON)
    workers = [start("tests.worker.processes", TEST_PROCESS_ROLE="worker", **ON) for _ in "ab"]
    wait_for(lambda: len(ended(engine, "tick")) >= 6, 60, "six ticks run on the workers")
    ticks = ended(engine, "tick")
    assert {run.status for run in ticks} == {ExecutionStatus.SUCCEEDED}
    # Each ran on a worker, not in the scheduler, through a queue job of its own.
    assert all(run.worker_id and run.task_id for run in ticks)
    assert len({run.task_id for run in ticks}) == len(ticks)
    # Both workers take runs from the one queue.
    wait_for(
        lambda: len({run.worker_id for run in ended(engine, "tick")}) == 2,
        30,
        lambda: f"runs on both workers; got {[r.worker_id for r in ended(engine, 'tick')]}",
    )
    # Every scheduled time once, whichever worker ran it.
    times = [run.scheduled_at for run in runs_of(engine, "tick")]
    assert len(times) == len(set(times))

    manage = Management(engine, settings, JOBS)
    manage.run("flaky", {})
    manage.run("slow", {})
    wait_for(lambda: len(ended(engine, "flaky")) == 2, 30, "the failure and its retry")
    first, retry = ended(engine, "flaky")
    assert (first.status, first.attempt, first.trigger_kind) == ("failed", 1, "manual")
    assert first.error_message == "upstream refused"
    # The retry was queued with the failure's end, and ran on a worker at its time.
    assert (retry.status, retry.attempt, retry.trigger_kind) == ("failed", 2, "retry")
    assert retry.worker_id
    assert retry.task_id
    assert retry.started_at is not None
    assert first.finished_at is not None
    assert retry.started_at >= first.finished_at
    wait_for(lambda: len(ended(engine, "slow")) == 1, 30, "the slow run's timeout")
    [slow] = ended(engine, "slow")
    assert slow.status == ExecutionStatus.TIMED_OUT
    assert slow.error_message == "timed out after 0:00:00.500000"
    assert slow.duration_ms is not None
    assert slow.duration_ms < 5000
    for process in (scheduler, *workers):
        assert process.poll() is None, "a process exited"


def test_cancel_removes_a_queued_run_and_stops_a_running_one(
    start: Launcher, engine: Engine, settings: Settings
) -> None:
    start("tests.worker.processes", TEST_PROCESS_ROLE="scheduler", **ON)
    # No worker serves `low`: its run waits in the queue.
    start(
        "tests.worker.processes",
        TEST_PROCESS_ROLE="worker",
        TEST_WORKER_QUEUES="critical,default",
        **ON,
    )
    wait_for(lambda: len(ended(engine, "tick")) >= 1, 60, "a tick run on the worker")
    manage = Management(engine, settings, JOBS)
    manage.run("slow", {})
    manage.run("hang", {})
    wait_for(
        lambda: [run.status for run in runs_of(engine, "hang")] == ["running"],
        30,
        lambda: f"the hanging run to start; got {runs_of(engine, 'hang')}",
    )
    [waiting] = runs_of(engine, "slow")
    assert waiting.status == ExecutionStatus.PENDING
    assert waiting.task_id is not None

    queued = manage.cancel(waiting.id)
    assert queued.detail == "the queued run was removed before a worker started it"
    [removed] = runs_of(engine, "slow")
    assert removed.status == ExecutionStatus.CANCELLED
    assert removed.worker_id is None
    with engine.connect() as connection:
        left = connection.exec_driver_sql(
            "SELECT count(*) FROM procrastinate_jobs WHERE id = %s", (waiting.task_id,)
        ).scalar()
    assert left == 0

    [hanging] = runs_of(engine, "hang")
    stopping = manage.cancel(hanging.id)
    assert stopping.detail == "the run's worker was told to stop it; it records the end"
    wait_for(lambda: len(ended(engine, "hang")) == 1, 15, "the running run to end")
    [stopped] = ended(engine, "hang")
    assert stopped.status == ExecutionStatus.CANCELLED
    assert stopped.error_message == "cancelled on request"
    assert stopped.duration_ms is not None
    assert stopped.duration_ms < 15000


def test_a_killed_workers_run_is_interrupted_and_retried_on_another(
    start: Launcher, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    marker = {"TEST_MARKER_DIR": str(tmp_path)}
    start("tests.worker.processes", TEST_PROCESS_ROLE="scheduler", **ON, **marker)
    doomed = start("tests.worker.processes", TEST_PROCESS_ROLE="worker", **ON, **marker)
    wait_for(lambda: len(ended(engine, "tick")) >= 1, 60, "a tick run on the worker")
    Management(engine, settings, JOBS).run("fragile", {})
    wait_for(
        lambda: [run.status for run in runs_of(engine, "fragile")] == ["running"],
        30,
        lambda: f"the fragile run to start; got {runs_of(engine, 'fragile')}",
    )
    [first] = runs_of(engine, "fragile")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    start("tests.worker.processes", TEST_PROCESS_ROLE="worker", **ON, **marker)
    # Its heartbeat goes stale: the leader ends the run and queues the retry it earns.
    wait_for(
        lambda: len(ended(engine, "fragile")) == 2,
        60,
        lambda: f"the lost run and its retry to end; got {runs_of(engine, 'fragile')}",
    )
    lost, retry = ended(engine, "fragile")
    assert lost.id == first.id
    assert lost.status == ExecutionStatus.INTERRUPTED
    assert lost.error_message == "the worker running it stopped or died during the run"
    assert (retry.status, retry.attempt, retry.trigger_kind) == ("succeeded", 2, "retry")
    assert retry.worker_id is not None
    assert retry.worker_id != lost.worker_id
    # The dead worker's queue job is gone; nothing else waits.
    with engine.connect() as connection:
        waiting = connection.exec_driver_sql(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'run_execution' "
            "AND status IN ('todo', 'doing') AND args->>'execution_id' IN (%s, %s)",
            (lost.id, retry.id),
        ).scalar()
    assert waiting == 0


def test_workers_are_refused_without_postgresql() -> None:
    with pytest.raises(ValidationError, match="workers_enabled needs a PostgreSQL database_url"):
        Settings(database_url="sqlite:///data/app.db", workers_enabled=True)


def test_under_a_backlog_each_queue_keeps_its_share_of_a_worker(
    start: Launcher, engine: Engine, settings: Settings
) -> None:
    """Backlogs in every queue at once: one worker runs 6 critical, 3 default and 1 low run at
    a time (the settings' defaults), so low moves on while critical still waits."""
    with write_session(engine) as session:
        sync_code_jobs(session, JOBS, settings.timezone)
    backlog = {"critical": 24, "default": 12, "low": 4}
    rows = [
        execution_row(
            f"hold_{queue}",
            queue,
            utcnow(),
            ExecutionStatus.PENDING,
            trigger_kind=TriggerKind.MANUAL,
        )
        for queue, count in backlog.items()
        for _ in range(count)
    ]
    with write_transaction(engine) as connection:
        connection.execute(insert(JobExecution), rows)
        queue_runs(connection, WorkerQueue(), [Deferral(row["id"], row["queue"]) for row in rows])
    start("tests.worker.processes", TEST_PROCESS_ROLE="worker", **ON)
    most: dict[str, int] = dict.fromkeys(backlog, 0)
    low_ran_during_critical_backlog = False

    def sample() -> bool:
        nonlocal low_ran_during_critical_backlog
        with engine.connect() as connection:
            counts = dict(
                connection.execute(
                    select(JobExecution.queue, func.count())
                    .where(JobExecution.status == ExecutionStatus.RUNNING)
                    .group_by(JobExecution.queue)
                ).all()
            )
            waiting = dict(
                connection.execute(
                    select(JobExecution.queue, func.count())
                    .where(JobExecution.status == ExecutionStatus.PENDING)
                    .group_by(JobExecution.queue)
                ).all()
            )
        for queue, count in counts.items():
            most[queue] = max(most[queue], count)
        if counts.get("low") and waiting.get("critical", 0) > 6:
            low_ran_during_critical_backlog = True
        return not counts and not waiting

    wait_for(sample, 60, lambda: f"the backlog to drain; most at once so far {most}")
    assert most == {"critical": 6, "default": 3, "low": 1}
    assert low_ran_during_critical_backlog
    with engine.connect() as connection:
        statuses = connection.execute(select(JobExecution.status).distinct()).scalars().all()
    assert set(statuses) == {ExecutionStatus.SUCCEEDED}


def test_max_instances_holds_across_workers(
    start: Launcher, engine: Engine, settings: Settings
) -> None:
    """Four runs each of a job allowed one at a time and of one allowed two, queued at once
    to two idle workers with slots for all: the rest are skipped, not run beside them."""
    with write_session(engine) as session:
        sync_code_jobs(session, JOBS, settings.timezone)
    for _ in "ab":
        start("tests.worker.processes", TEST_PROCESS_ROLE="worker", **ON)
    wait_for(lambda: serving_workers(engine) == 2, 60, "two workers serving their queues")
    now = utcnow()
    rows = [
        execution_row(
            job_id, "critical", now, ExecutionStatus.PENDING, trigger_kind=TriggerKind.MANUAL
        )
        for _ in range(4)
        for job_id in ("single", "pair")
    ]
    with write_transaction(engine) as connection:
        connection.execute(insert(JobExecution), rows)
        queue_runs(connection, WorkerQueue(), [Deferral(row["id"], "critical") for row in rows])
    wait_for(
        lambda: len(ended(engine, "single")) + len(ended(engine, "pair")) == 8,
        60,
        "the eight runs to end",
    )
    for job_id, limit in (("single", 1), ("pair", 2)):
        runs = ended(engine, job_id)
        went = [run for run in runs if run.status == ExecutionStatus.SUCCEEDED]
        skipped = [run for run in runs if run.status == ExecutionStatus.SKIPPED]
        assert (len(went), len(skipped)) == (limit, 4 - limit), job_id
        assert {run.error_message for run in skipped} == {SKIP_REASON}
        assert all(run.worker_id for run in runs)


def serving_workers(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.scalar(
                select(func.count()).where(WorkerProcess.state == WorkerState.RUNNING)
            )
            or 0
        )


def test_a_run_whose_function_the_worker_lacks_fails_with_why(
    engine: Engine, registered: list[str]
) -> None:
    """The job is the code's, but this worker runs older code, without it."""
    row = execution_row(
        "system_maintenance",
        "default",
        utcnow(),
        ExecutionStatus.PENDING,
        trigger_kind=TriggerKind.MANUAL,
    )
    with write_transaction(engine) as connection:
        connection.execute(insert(JobExecution), [row])
        queue_runs(connection, WorkerQueue(), [Deferral(row["id"], "default")])

    async def start() -> Started | None:
        url = engine.url.render_as_string(hide_password=False)
        records = RunRecords(conninfo(url), "worker-old")
        await records.open()
        try:
            return await WorkerRuns(engine, records, JOBS, FailureAlerts(3, log_alert)).start(
                row["id"]
            )
        finally:
            await records.close()

    assert asyncio.run(start()) is None
    [run] = runs_of(engine, "system_maintenance")
    assert run.status == ExecutionStatus.FAILED
    assert run.worker_id == "worker-old"
    assert run.error_message == (
        "cannot run on this worker: id: no longer defined in code (is the worker's code current?)"
    )


def test_queues_are_checked_once_with_a_clear_message() -> None:
    assert parse_queues(None) == ("critical", "default", "low")
    assert parse_queues("low, critical,low") == ("low", "critical")
    with pytest.raises(QueuesError, match=r"unknown queue.*'urgent'.*choose from critical"):
        parse_queues("urgent,low")
