"""PostgreSQL restarted under a running scheduler and worker, on a server of the test's own:
health shows the outage, and both come back by themselves, the same processes."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from app import ENV_PREFIX
from app.core.db import create_db_engine, utcnow
from app.core.enums import ExecutionStatus
from app.core.health import HealthReport, check_health
from app.core.migrations import upgrade
from app.core.models import JobExecution
from benchmarks.databases import OwnServer
from tests.conftest import Launcher
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

    def health() -> HealthReport:
        return check_health(engine, 3, workers=True)

    def workers_healthy() -> bool:
        report = health().workers
        return report is not None and report.healthy

    try:
        wait_for(lambda: len(ended(engine, "tick")) >= 2, 60, "ticks run on the worker")
        wait_for(workers_healthy, 30, lambda: f"the worker to report; got {health()}")

        own_server.stop()
        down = health()
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
        restarted = utcnow()
        wait_for(workers_healthy, 60, lambda: f"the worker to serve again; got {health()}")
        report = health().workers
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
    finally:
        engine.dispose()


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
