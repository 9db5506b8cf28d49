"""APScheduler's executor slot, filled so that a due time is claimed before anything runs.

APScheduler hands an executor each job with the times that fell due. Its own executors run
the job's function at once and count instances themselves, dropping a time when the count is
full; this one passes the times to the job runtime, which claims them and applies the job's
limits and catch-up policy, recording every time it does not run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from sqlalchemy.exc import SQLAlchemyError

from app.components.scheduler.history import release
from app.core.text import first_line

if TYPE_CHECKING:
    from app.components.scheduler.execution import JobRuntime, Waiting

logger = logging.getLogger("app.scheduler")


def waiting_claims(waiting: Iterable[Waiting]) -> list[tuple[str, str, datetime, int]]:
    """The claims of runs that wait for their time, as `history.release` takes them."""
    return [(run.execution_id, run.job_id, run.scheduled_at, run.version) for run in waiting]


class ClaimingExecutor(BaseExecutor):  # type: ignore[misc]  # APScheduler ships no types
    """Gives due times to the runtime; starts and stops its claimer and its lease with the timer."""

    def __init__(self, runtime: JobRuntime) -> None:
        super().__init__()
        self._runtime = runtime

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._runtime.begin()

    def shutdown(self, wait: bool = True) -> None:
        runtime = self._runtime
        waiting = runtime.stop_claiming()
        try:
            release(runtime.engine, waiting_claims(waiting), runtime.fence)
        except SQLAlchemyError as error:
            # Left as claimed: the next leader marks them interrupted ("may not have run").
            logger.warning(
                "claims of runs not yet started could not be released",
                extra={"count": len(waiting), "error": first_line(error)},
            )
        # Runs still going are cancelled: coroutine runs record themselves as interrupted.
        runtime.cancel_runs()
        # The timer is gone, so this process leads no more: a standby need not wait.
        runtime.lease.give_up()

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        # No instance count here: `max_instances` is applied when the times are claimed.
        self._do_submit_job(job, run_times)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        job.func(*job.args, run_times)
