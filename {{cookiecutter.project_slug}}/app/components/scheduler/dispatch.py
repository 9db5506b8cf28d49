"""Where the leader's claimed runs go: run by the scheduler itself, or handed to worker processes.

With workers, a claimed run is deferred to the workers' queue in the transaction that claims
it, so no run is claimed without being queued, nor queued twice; a worker then starts it. The
queue is the only thing the scheduler needs of the workers, as this protocol says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection

from app.core.settings import Settings


@dataclass(frozen=True)
class Deferral:
    """A claimed run to queue for the workers: its row, its queue, and when it may start."""

    execution_id: str
    queue: str
    # None: at once.
    run_at: datetime | None = None


class Dispatch(Protocol):
    """Queues runs for the workers, in the caller's transaction."""

    def defer(self, connection: Connection, runs: Sequence[Deferral]) -> None:
        """Queue `runs`, whose rows are written in this transaction, at their jobs' priority,
        and note each one's queue job on its row (`task_id`), for a cancel to find."""
        ...

    def stalled(self, connection: Connection, silent_seconds: float) -> list[tuple[int, str]]:
        """The jobs taken by workers silent for `silent_seconds` (dead, or cut off), as
        (job id, execution id), locked until the transaction ends."""
        ...

    def requeue(self, connection: Connection, task_id: int) -> None:
        """Put a stalled job back in its queue, for another worker."""
        ...

    def drop(self, connection: Connection, task_id: int) -> None:
        """Take a stalled job off the queue: its run has been dealt with."""
        ...

    def cancel(self, connection: Connection, task_id: int) -> bool:
        """Take a queued job off the queue, or tell its worker to stop it if it has started;
        False if it is neither waiting nor running."""
        ...


def dispatch_for(settings: Settings) -> Dispatch | None:
    """The workers' queue when runs go to worker processes; None when the scheduler runs them."""
{%- if cookiecutter.workers == "procrastinate" %}
    if not settings.workers_enabled:
        return None
    from app.components.worker.queue import WorkerQueue

    return WorkerQueue()
{%- else %}
    # This project has no worker processes (the template's `workers` option).
    return None
{%- endif %}
