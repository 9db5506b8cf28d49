"""The external sync against a real HTTP server: success, bad replies, no server at all, and
the secrets its URL and the alert webhook's carry, which no log, history row or answer shows."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from app import ENV_PREFIX
from app.components.backend.main import create_app
from app.components.scheduler.execution import current_runtime
from app.components.scheduler.main import create_scheduler
from app.core.db import session_scope, utcnow
from app.core.enums import ExecutionStatus
from app.core.health import check_health
from app.core.models import Job, JobExecution
from app.core.settings import Settings
from app.services.sync import SyncError, sync_external_data
from tests.api.test_management import AUTH
from tests.conftest import Launcher, free_port
from tests.helpers import stop, wait_for, wait_until

ROUTES: dict[str, tuple[int, str, bytes]] = {
    "/data": (200, "application/json", json.dumps({"items": [1, 2, 3]}).encode()),
    "/broken": (500, "text/plain", b"boom"),
    "/html": (200, "text/html", b"<html>not json</html>"),
}


class Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, content_type, body = ROUTES.get(self.path, (404, "text/plain", b"missing"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_snapshot_is_written(upstream: str, tmp_path: Path) -> None:
    result = await sync_external_data(f"{upstream}/data", snapshot_dir=tmp_path)
    snapshot = json.loads(result.snapshot.read_text())
    assert result.status_code == 200
    assert result.size_bytes == len(ROUTES["/data"][2])
    assert snapshot["data"] == {"items": [1, 2, 3]}
    assert snapshot["url"] == f"{upstream}/data"


@pytest.mark.parametrize(
    ("path", "message"),
    [("/broken", "answered 500"), ("/html", "did not answer with JSON")],
)
async def test_bad_reply_fails_and_keeps_the_old_snapshot(
    upstream: str, tmp_path: Path, path: str, message: str
) -> None:
    await sync_external_data(f"{upstream}/data", snapshot_dir=tmp_path)
    before = (tmp_path / "latest.json").read_text()
    with pytest.raises(SyncError, match=message):
        await sync_external_data(f"{upstream}{path}", snapshot_dir=tmp_path)
    assert (tmp_path / "latest.json").read_text() == before


async def test_unreachable_service_fails_clearly(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/data"
    with pytest.raises(SyncError, match=f"cannot reach {url}"):
        await sync_external_data(url, snapshot_dir=tmp_path, timeout=2)


def ended(engine: Engine) -> bool:
    current_runtime().recorder.flush()
    with session_scope(engine) as session:
        statuses = session.scalars(select(JobExecution.status)).all()
    return any(ExecutionStatus(status).is_final for status in statuses)


async def test_scheduled_sync_to_unreachable_service_is_one_log_line(
    settings: Settings,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/data"
    monkeypatch.setattr(settings, "sync_url", url)
    caplog.set_level(logging.INFO)
    create_scheduler(settings=settings, engine=engine)
    with session_scope(engine) as session:
        session.get_one(Job, "sync_external_data").next_run_at = utcnow() + timedelta(
            milliseconds=300
        )
    scheduler = create_scheduler(settings=settings, engine=engine)
    scheduler.start()
    try:
        await wait_until(lambda: ended(engine), 15, "the sync run to end")
        # A failed run is an outcome, not a crash: the scheduler carries on.
        assert scheduler.running
    finally:
        await stop(scheduler)
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1
    assert failures[0].getMessage().startswith(f"job failed: cannot reach {url}: ")
    assert getattr(failures[0], "job_id", None) == "sync_external_data"
    assert not hasattr(failures[0], "traceback")


class FailingHook(BaseHTTPRequestHandler):
    """A webhook that answers 500, so that its failure is logged."""

    calls: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.calls.append(self.path)
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


def test_secrets_in_urls_stay_out_of_logs_history_and_answers(
    start: Launcher, env: dict[str, str], settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    hook = ThreadingHTTPServer(("127.0.0.1", 0), FailingHook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    secrets = ("s3cret-pass", "k3y-value", "SECRET-PATH-9")
    sync_url = f"http://syncuser:{secrets[0]}@127.0.0.1:{free_port()}/data?api_key={secrets[1]}"
    webhook = f"http://127.0.0.1:{hook.server_address[1]}/hooks/T0/{secrets[2]}"
    try:
        scheduler = start(
            "app.entrypoints.scheduler",
            **{
                f"{ENV_PREFIX}SYNC_URL": sync_url,
                f"{ENV_PREFIX}ALERT_WEBHOOK_URL": webhook,
                f"{ENV_PREFIX}ALERT_AFTER_CONSECUTIVE_FAILURES": "1",
                f"{ENV_PREFIX}LOG_LEVEL": "DEBUG",
            },
        )
        wait_for(lambda: check_health(engine, 3).healthy, 30, "a running scheduler")
        run = subprocess.run(
            [sys.executable, "-m", "app.cli", "jobs", "run", "sync_external_data"],
            env={**env, f"{ENV_PREFIX}SYNC_URL": sync_url},
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        log = tmp_path / "app.entrypoints.scheduler.log"
        wait_for(lambda: "alert webhook failed" in log.read_text(), 30, "the alert to fail")
        scheduler.terminate()
        scheduler.wait(timeout=15)
    finally:
        hook.shutdown()
        hook.server_close()
    assert FailingHook.calls == [f"/hooks/T0/{secrets[2]}"]
    with session_scope(engine) as session:
        [failed] = session.scalars(
            select(JobExecution).where(JobExecution.status == ExecutionStatus.FAILED)
        ).all()
        stored = " ".join(
            str(getattr(failed, column.key)) for column in JobExecution.__table__.columns
        )
    with TestClient(create_app(settings), headers=AUTH) as client:
        answers = " ".join(
            client.get(path).text
            for path in (
                f"/api/executions/{failed.id}",
                "/api/jobs/sync_external_data",
                "/api/jobs/sync_external_data/executions",
            )
        )
    logged = log.read_text()
    for secret in secrets:
        for where, text in (("log", logged), ("history", stored), ("API", answers)):
            assert secret not in text, f"{secret} in the {where}"
    # What is left still says what failed, and where.
    message = failed.error_message or ""
    assert "cannot reach http://***@127.0.0.1:" in message
    assert "/data?***" in message
    assert "webhook_error" in logged
    assert f"http://127.0.0.1:{hook.server_address[1]}/***" in logged
