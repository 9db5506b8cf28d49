"""A worker process's Prometheus metrics, on a port of its own (WORKER_METRICS_PORT).

The runs' families are the scheduler's own, under the same names (`scheduler_runs_total`,
`scheduler_run_duration_seconds`, `scheduler_fire_lateness_seconds`...): a run counts the
same whichever process ran it, so the alert rules and the Grafana dashboard read a worker's
runs unchanged, and Prometheus's `job` label tells the processes apart. Besides them, the
worker's own: each queue's limit and runs in progress here, and how often it lost the
database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.components.scheduler.metrics import RUN_FAMILIES
from app.core.metrics import new_registry

REGISTRY = new_registry()
for _family in RUN_FAMILIES:
    REGISTRY.register(_family)

RECONNECTS = Counter(
    "worker_database_reconnects",
    "Times this worker lost the database and started serving its queues again.",
    registry=REGISTRY,
)
HEARTBEAT_FAILURES = Counter(
    "worker_heartbeat_write_failures",
    "Heartbeats this worker could not write; while they fail, health shows it down.",
    registry=REGISTRY,
)


class WorkerLoad(Collector):
    """Each queue's limit and runs in progress in this worker, read when scraped."""

    def __init__(self) -> None:
        self._concurrency: Mapping[str, int] = {}
        self._running: Callable[[], Mapping[str, int]] = dict

    def watch(
        self, concurrency: Mapping[str, int], running: Callable[[], Mapping[str, int]]
    ) -> None:
        """Report `concurrency`, and the runs in progress by queue as `running()` counts them."""
        self._concurrency = concurrency
        self._running = running

    def collect(self) -> Iterator[Metric]:
        limits = GaugeMetricFamily(
            "worker_concurrency",
            "Runs of the queue this worker runs at once, at most; a queue it does not serve has "
            "no series.",
            labels=["queue"],
        )
        going = GaugeMetricFamily(
            "worker_runs_in_progress", "Runs of the queue in progress on this worker.",
            labels=["queue"],
        )  # fmt: skip
        running = self._running()
        for queue, limit in self._concurrency.items():
            limits.add_metric([queue], limit)
            going.add_metric([queue], running.get(queue, 0))
        yield limits
        yield going


LOAD = WorkerLoad()
REGISTRY.register(LOAD)
