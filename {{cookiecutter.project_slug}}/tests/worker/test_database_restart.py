"""PostgreSQL restarted under a running scheduler and worker, on a server of the test's own:
health shows the outage, and both come back by themselves, the same processes."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select

from app import ENV_PREFIX
from app.core.db import create_db_engine, utcnow
from app.core.enums import ExecutionStatus
from app.core.health import HealthReport, check_health
from app.core.migrations import upgrade
from app.core.models import JobExecution
from benchmarks.databases import OwnServer
from tests.conftest import Launcher, free_port
from tests.helpers import wait_for
from tests.worker.test_workers import ON, ended


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    if OwnServer.programs() is None:
        # The dev image (compose's test profile) has the client alone; the host suite runs it.
        pytest.skip(OwnServer.MISSING)
    # Under /tmp, not the test's folder: the server runs as `postgres`, which may not enter
    # pytest's folders when the tests run as root.
    scratch = Path(tempfile.mkdtemp(prefix="worker-restart-"))
    server = OwnServer(scratch)
    server.start()
    try:
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def test_a_database_restart_is_survived_and_shown(
    own_server: OwnServer, start: Launcher, tmp_path: Path
) -> None:
    url = {f"{ENV_PREFIX}DATABASE_URL": own_server.url}
    engine = create_db_engine(own_server.url)
    upgrade(engine)
    scheduler = start("tests.worker.processes", TEST_PROCESS_ROLE="scheduler", **ON, **url)
    worker = start("tests.worker.processes", TEST_PROCESS_ROLE="worker", **ON, **url)

    try:
        wait_for(lambda: len(ended(engine, "tick")) >= 2, 60, "ticks run on the worker")
        wait_for(
            lambda: workers_healthy(engine),
            30,
            lambda: f"the worker to report; got {health(engine)}",
        )

        own_server.stop()
        down = health(engine)
        assert not down.healthy
        assert down.database.detail.startswith("unreachable: ")
        assert down.workers is not None
        assert down.workers.detail == "unknown: the database is unreachable"
        worker_log = tmp_path / "tests.worker.processes.log"
        wait_for(
            lambda: "worker heartbeat not written" in worker_log.read_text(),
            30,
            "the worker to notice the outage",
        )

        own_server.start()
        serve_again(engine, scheduler, worker)
    finally:
        engine.dispose()


def test_an_outage_longer_than_a_connection_wait_restarts_the_workers_queues(
    own_server: OwnServer, start: Launcher, tmp_path: Path
) -> None:
    """Past a pool's wait for a connection, Procrastinate's worker gives up: the process
    starts its queues again by itself once the database answers, and counts it."""
    url = {f"{ENV_PREFIX}DATABASE_URL": own_server.url}
    engine = create_db_engine(own_server.url)
    upgrade(engine)
    port = free_port()
    scheduler = start("tests.worker.processes", TEST_PROCESS_ROLE="scheduler", **ON, **url)
    worker = start(
        "tests.worker.processes",
        TEST_PROCESS_ROLE="worker",
        **ON,
        **url,
        **{f"{ENV_PREFIX}WORKER_METRICS_PORT": str(port)},
    )

    try:
        wait_for(lambda: len(ended(engine, "tick")) >= 2, 60, "ticks run on the worker")
        own_server.stop()
        worker_log = tmp_path / "tests.worker.processes.log"
        wait_for(
            lambda: "worker lost the database; starting again" in worker_log.read_text(),
            90,
            "the worker's queues to give up on the database",
        )
        assert not workers_healthy(engine)
        own_server.start()
        serve_again(engine, scheduler, worker)
        assert reconnects(port) >= 1
    finally:
        engine.dispose()


def reconnects(port: int) -> float:
    """The worker's count of times it started its queues again, as its metrics say."""
    page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return next(
        sample.value
        for family in text_string_to_metric_families(page)
        for sample in family.samples
        if sample.name == "worker_database_reconnects_total"
    )


def health(engine: Engine) -> HealthReport:
    return check_health(engine, 3, workers=True)


def workers_healthy(engine: Engine) -> bool:
    report = health(engine).workers
    return report is not None and report.healthy


def serve_again(
    engine: Engine, scheduler: subprocess.Popen[str], worker: subprocess.Popen[str]
) -> None:
    """Once the database is back: the same worker serves and runs ticks, the scheduler
    still runs, and what the outage cut short has ended."""
    restarted = utcnow()
    wait_for(
        lambda: workers_healthy(engine),
        60,
        lambda: f"the worker to serve again; got {health(engine)}",
    )
    report = health(engine).workers
    assert report is not None
    assert [w.pid for w in report.workers if w.serving] == [worker.pid]
    wait_for(
        lambda: any(
            run.status == ExecutionStatus.SUCCEEDED
            and run.started_at is not None
            and run.started_at > restarted
            for run in ended(engine, "tick")
        ),
        60,
        "a tick to run on the worker after the restart",
    )
    assert scheduler.poll() is None, "the scheduler exited"
    assert worker.poll() is None, "the worker exited"
    # Nothing taken before the outage is left running: what it cut short was ended.
    wait_for(
        lambda: not _running_since_before(engine, restarted),
        60,
        lambda: f"the runs cut short to end; got {_running_since_before(engine, restarted)}",
    )


def _running_since_before(engine: Engine, moment: object) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.scalars(
                select(JobExecution.id).where(
                    JobExecution.status == ExecutionStatus.RUNNING,
                    JobExecution.started_at < moment,
                )
            )
        )
