"""Alerts on repeated failure: one hook point, logging by default, a webhook when configured.

To alert elsewhere (a chat, a pager), replace `alert_hook()` with your own function.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from app.core.redact import webhook_address
from app.core.settings import Settings

logger = logging.getLogger("app.scheduler.alerts")


@dataclass(frozen=True)
class FailureAlert:
    """A job has failed `consecutive_failures` times in a row."""

    job_id: str
    consecutive_failures: int
    execution_id: str
    error: str


AlertHook = Callable[[FailureAlert], Awaitable[None]]


async def log_alert(alert: FailureAlert) -> None:
    """The default: one error line, for log-based alerting to pick up."""
    logger.error("job keeps failing", extra=asdict(alert))


def webhook_alert(url: str, timeout: float = 10.0) -> AlertHook:
    """POST each alert as JSON to `url`; a webhook that fails is logged, never raised."""

    async def send(alert: FailureAlert) -> None:
        # Imported on the first alert: httpx (and the CLI libraries it loads) costs the
        # scheduler about 5 MB of memory that most processes never need.
        import httpx

        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.post(url, json={"event": "job_failing", **asdict(alert)})
                response.raise_for_status()
        except httpx.HTTPError as error:
            # Not httpx's message: it names the URL, whose path is the webhook's secret.
            if isinstance(error, httpx.HTTPStatusError):
                reason = f"answered {error.response.status_code}"
            else:
                reason = type(error).__name__
            logger.error(
                "alert webhook failed; alert logged instead",
                extra={**asdict(alert), "webhook": webhook_address(url), "webhook_error": reason},
            )

    return send


def alert_hook(settings: Settings) -> AlertHook:
    """The hook every alert goes to."""
    if settings.alert_webhook_url:
        return webhook_alert(settings.alert_webhook_url)
    return log_alert


class FailureAlerts:
    """Alerts when a job's failures in a row reach the threshold, and again at each multiple."""

    def __init__(self, threshold: int, hook: AlertHook) -> None:
        self.threshold = threshold
        self.hook = hook

    async def failed(self, job_id: str, in_a_row: int, execution_id: str, error: str) -> None:
        """A run of `job_id` failed, its `in_a_row`-th failure since the job's last success."""
        if in_a_row % self.threshold == 0:
            await self.hook(FailureAlert(job_id, in_a_row, execution_id, error))


class FailureStreaks:
    """Counts the consecutive failures of the runs this process runs, in memory, and alerts.

    Worker processes count theirs in `jobs.consecutive_failures` instead: several workers
    run one job's runs, so only the database sees the whole streak.
    """

    def __init__(self, threshold: int, hook: AlertHook) -> None:
        self.alerts = FailureAlerts(threshold, hook)
        self.streaks: Counter[str] = Counter()

    def succeeded(self, job_id: str) -> None:
        """A success ends the streak."""
        self.streaks.pop(job_id, None)

    async def failed(self, job_id: str, execution_id: str, error: str) -> None:
        """Count a failure, and alert when the streak calls for it."""
        self.streaks[job_id] += 1
        await self.alerts.failed(job_id, self.streaks[job_id], execution_id, error)
