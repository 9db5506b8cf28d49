"""Failure alerts: a streak threshold, the log default, and a webhook against a real server."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.components.scheduler.alerts import (
    FailureAlert,
    FailureStreaks,
    alert_hook,
    log_alert,
    webhook_alert,
)
from app.core.settings import Settings
from tests.conftest import free_port

received: list[dict[str, Any]] = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


@pytest.fixture
def webhook() -> Iterator[str]:
    received.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


async def test_alert_on_the_threshold_and_each_multiple() -> None:
    alerts: list[FailureAlert] = []

    async def capture(alert: FailureAlert) -> None:
        alerts.append(alert)

    streaks = FailureStreaks(threshold=2, hook=capture)
    for n in range(5):
        await streaks.failed("job", f"run-{n}", "boom")
    streaks.succeeded("job")
    await streaks.failed("job", "run-5", "boom")
    assert [(a.consecutive_failures, a.execution_id) for a in alerts] == [
        (2, "run-1"),
        (4, "run-3"),
    ]


async def test_webhook_receives_the_alert(webhook: str) -> None:
    await webhook_alert(webhook)(FailureAlert("sync", 3, "abc", "upstream is down"))
    assert received == [
        {
            "event": "job_failing",
            "job_id": "sync",
            "consecutive_failures": 3,
            "execution_id": "abc",
            "error": "upstream is down",
        }
    ]


async def test_unreachable_webhook_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}/alerts"
    await webhook_alert(url, timeout=2)(FailureAlert("sync", 3, "abc", "upstream is down"))
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.getMessage() == "alert webhook failed; alert logged instead"
    assert getattr(record, "job_id", None) == "sync"


def test_settings_choose_the_hook(settings: Settings, webhook: str) -> None:
    assert alert_hook(settings) is log_alert
    with_webhook = settings.model_copy(update={"alert_webhook_url": webhook})
    assert alert_hook(with_webhook) is not log_alert
