"""The scheduler's Prometheus metrics: what ran, how late, who leads, what the database refused.

Every series is labelled by job id at most (and a fixed vocabulary: queue, status, reason,
operation), never by host, instance or error text, so the number of series grows with the
jobs only. Counters count what this process did; a new leader starts from zero, which
Prometheus's `rate` and `increase` read as a counter reset. Which instance leads shows in
`scheduler_leader`, one series per scraped target.

The scheduler serves them on a port of its own; the families the leader's state gives (runs
in progress, paused jobs, next fire times) are read when scraped (`LeaderState`). The runs'
families (`RUN_FAMILIES`) are a worker process's too, when workers run the runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    Summary,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from app.core.db import session_scope
from app.core.enums import ExecutionStatus, MissReason
from app.core.metrics import new_registry
from app.core.models import Job
from app.core.text import first_line
from app.core.workers import WorkersHealth, read_workers

if TYPE_CHECKING:
    from app.components.scheduler.execution import JobRuntime

logger = logging.getLogger("app.scheduler.metrics")

REGISTRY = new_registry()

# From a millisecond (a fire on time) to minutes (a run after an outage, a long job).
LATENESS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
DURATION_BUCKETS = (*LATENESS_BUCKETS, 600.0, 1800.0, 3600.0)
APPLY_BUCKETS = LATENESS_BUCKETS[:-4]

RUNS = Counter(
    "scheduler_runs",
    "Runs that ended, by job and final status (every status but pending and running).",
    ["job_id", "status"],
    registry=None,
)
# The histograms are by queue, not by job: a histogram's series cost a job 40 us to create
# and 5 kB to keep, which a burst of thousands of one-off jobs would pay on the event loop.
# Per job, `scheduler_job_run_seconds` keeps the sum and count of the durations.
RUN_DURATION = Histogram(
    "scheduler_run_duration_seconds",
    "How long runs that started took, from start to end, by queue.",
    ["queue"],
    buckets=DURATION_BUCKETS,
    registry=None,
)
JOB_RUN_SECONDS = Summary(
    "scheduler_job_run_seconds",
    "Time spent in runs of each job: the sum and count of their durations.",
    ["job_id"],
    registry=None,
)
FIRE_LATENESS = Histogram(
    "scheduler_fire_lateness_seconds",
    "How late runs started, by queue: start minus scheduled time.",
    ["queue"],
    buckets=LATENESS_BUCKETS,
    registry=None,
)
FIRES_SKIPPED = Counter(
    "scheduler_fires_skipped",
    "Times skipped because the job's previous run was still going (max_instances).",
    ["job_id", "reason"],
    registry=None,
)
RETRIES = Counter(
    "scheduler_retries",
    "Retries planned by a job's retry policy after a failed or timed-out run.",
    ["job_id"],
    registry=None,
)
# The families of runs, served by whichever process runs them (this one, or worker processes
# where they run the runs) under the same names, so that alerts and panels read every run
# wherever it ran.
RUN_FAMILIES = (RUNS, RUN_DURATION, JOB_RUN_SECONDS, FIRE_LATENESS, FIRES_SKIPPED, RETRIES)
for _family in RUN_FAMILIES:
    REGISTRY.register(_family)

FIRES_MISSED = Counter(
    "scheduler_fires_missed",
    "Scheduled times that did not run, by job and reason.",
    ["job_id", "reason"],
    registry=REGISTRY,
)
LEADER = Gauge(
    "scheduler_leader", "1 while this instance leads (claims and runs jobs), else 0.",
    registry=REGISTRY,
)  # fmt: skip
LEADER_EPOCH = Gauge(
    "scheduler_leader_epoch",
    "The epoch of this instance's current or last leadership (0: it has not led).",
    registry=REGISTRY,
)
LEADER_CHANGES = Counter(
    "scheduler_leader_changes",
    "Times this instance took the leadership; summed over instances, the leader changes.",
    registry=REGISTRY,
)
LEASE_RENEWAL_FAILURES = Counter(
    "scheduler_lease_renewal_failures",
    "Lease renewals that failed or hung; a leader that cannot renew stops claiming.",
    registry=REGISTRY,
)
DATABASE_WRITE_FAILURES = Counter(
    "scheduler_database_write_failures",
    "Writes the database refused, by what was written; each is retried.",
    ["operation"],
    registry=REGISTRY,
)
CHANGE_APPLY = Histogram(
    "scheduler_change_apply_seconds",
    "From a change being stored or a command sent (API, CLI) to the leader applying it; "
    "kind: job (a changed job row) or command (run, retry, cancel).",
    ["kind"],
    buckets=APPLY_BUCKETS,
    registry=REGISTRY,
)

SKIPPED_MAX_INSTANCES = "max_instances"
# How long a scrape waits for the jobs table.
READ_TIMEOUT_SECONDS = 2.0
# What the database writes are, for `scheduler_database_write_failures`.
WRITE_OPERATIONS = ("history", "claims", "heartbeat", "commands")
for _operation in WRITE_OPERATIONS:
    DATABASE_WRITE_FAILURES.labels(_operation)

# Each run's end is counted where it is written: `HistoryRecorder.finished` for the runs the
# leader ends, and beside the statements that end runs in bulk (missed claims, runs a
# previous leader left).


def runs_ended(job_ids: Iterable[str], status: ExecutionStatus) -> None:
    """Count the ends of runs, one per job id given."""
    for job_id in job_ids:
        RUNS.labels(job_id, status.value).inc()


def forget_job(job_id: str) -> None:
    """Drop every series of a deleted job."""
    for family, label_sets in (
        (RUNS, [(job_id, status.value) for status in ExecutionStatus]),
        (FIRES_MISSED, [(job_id, reason.value) for reason in MissReason]),
        (FIRES_SKIPPED, [(job_id, SKIPPED_MAX_INSTANCES)]),
        (RETRIES, [(job_id,)]),
        (JOB_RUN_SECONDS, [(job_id,)]),
    ):
        for labels in label_sets:
            with contextlib.suppress(KeyError):
                family.remove(*labels)


def run_ended(job_id: str, status: ExecutionStatus) -> None:
    RUNS.labels(job_id, status.value).inc()


def run_finished(job_id: str, queue: str, duration_seconds: float) -> None:
    """A run that started has ended, after `duration_seconds`."""
    RUN_DURATION.labels(queue).observe(duration_seconds)
    JOB_RUN_SECONDS.labels(job_id).observe(duration_seconds)


def fire_missed(job_id: str, reason: MissReason) -> None:
    """A scheduled time that will not run. (Its row's end is counted where it is written.)"""
    FIRES_MISSED.labels(job_id, reason.value).inc()


def fires_unlisted(job_id: str, count: int) -> None:
    """Due times beyond the rows one catch-up writes: missed, with no row each."""
    FIRES_MISSED.labels(job_id, MissReason.UNLISTED.value).inc(count)


def fire_skipped(job_id: str) -> None:
    """A due run skipped because the job's previous run still goes (its row is `skipped`)."""
    FIRES_SKIPPED.labels(job_id, SKIPPED_MAX_INSTANCES).inc()


def fire_started(queue: str, scheduled_at: datetime, started_at: datetime) -> None:
    """A scheduled time's run started (manual runs and retries are not fires)."""
    FIRE_LATENESS.labels(queue).observe(max((started_at - scheduled_at).total_seconds(), 0.0))


def retry_planned(job_id: str) -> None:
    RETRIES.labels(job_id).inc()


def write_failed(operation: str) -> None:
    DATABASE_WRITE_FAILURES.labels(operation).inc()


def lease_renewal_failed() -> None:
    LEASE_RENEWAL_FAILURES.inc()


def change_applied(sent_at: datetime, applied_at: datetime, kind: str, since: datetime) -> None:
    """A change (`job`) or command (`command`) sent at `sent_at` was applied.

    Only what was sent after `since` (this leader started reading) counts: what waited for a
    scheduler to start says how long none ran, not how fast one applies.
    """
    if sent_at >= since:
        CHANGE_APPLY.labels(kind).observe(max((applied_at - sent_at).total_seconds(), 0.0))


def leading(epoch: int) -> None:
    LEADER.set(1)
    LEADER_EPOCH.set(epoch)
    LEADER_CHANGES.inc()


def not_leading() -> None:
    LEADER.set(0)


class LeaderState(Collector):
    """The families read from the leader when scraped; nothing while this process stands by.

    Runs in progress and failure streaks come from the runtime's memory (the streaks from the
    `jobs` table when worker processes run the runs); paused jobs and next fire times from
    the table, which holds every job (the timer holds only those due within the horizon).
    """

    def __init__(self) -> None:
        self._runtime: Callable[[], JobRuntime | None] = lambda: None
        self._unreadable = False
        self._lock = threading.Lock()

    def watch(self, runtime: Callable[[], JobRuntime | None]) -> None:
        """Read the families from whatever runtime `runtime()` gives when scraped."""
        self._runtime = runtime

    def collect(self) -> Iterator[Metric]:
        runtime = self._runtime()
        if runtime is None or not runtime.lease.valid():
            return
        in_progress = GaugeMetricFamily(
            "scheduler_runs_in_progress", "Runs going now, by job.", labels=["job_id"]
        )
        for job_id, count in sorted(runtime.active.items()):
            if count:
                in_progress.add_metric([job_id], count)
        yield in_progress
        if runtime.dispatch is None:
            yield _streak_family(runtime.streaks.streaks)
        yield from self._from_table(runtime)

    def _from_table(self, runtime: JobRuntime) -> Iterator[Metric]:
        # One scrape at a time reads the table, and none waits long for it: a slow or locked
        # database leaves these families out rather than the whole page (and `up`) late.
        if not self._lock.acquire(timeout=READ_TIMEOUT_SECONDS):
            self._left_out("another scrape is still reading the jobs table")
            return
        try:
            with session_scope(runtime.engine) as session:
                if session.bind is not None and session.bind.dialect.name == "postgresql":
                    timeout = f"{int(READ_TIMEOUT_SECONDS * 1000)}ms"
                    session.execute(text(f"SET LOCAL statement_timeout = '{timeout}'"))
                    session.execute(text(f"SET LOCAL lock_timeout = '{timeout}'"))
                rows = session.execute(
                    select(Job.id, Job.paused, Job.next_run_at, Job.consecutive_failures)
                ).all()
                workers = (
                    read_workers(
                        runtime.engine, session, runtime.settings.heartbeat_stale_after_seconds
                    )
                    if runtime.dispatch is not None
                    else None
                )
        except SQLAlchemyError as error:
            self._left_out(first_line(error))
            return
        finally:
            self._lock.release()
        self._unreadable = False
        jobs = GaugeMetricFamily("scheduler_jobs", "Jobs stored, paused or not.")
        jobs.add_metric([], len(rows))
        yield jobs
        paused = GaugeMetricFamily("scheduler_jobs_paused", "Jobs paused now.")
        paused.add_metric([], sum(1 for row in rows if row.paused))
        yield paused
        next_fire = GaugeMetricFamily(
            "scheduler_job_next_fire_timestamp_seconds",
            "Each job's next scheduled time (Unix seconds); no series for a paused job or a "
            "one-time job that has run.",
            labels=["job_id"],
        )
        for row in sorted(rows, key=lambda row: row.id):
            if row.next_run_at is not None and not row.paused:
                next_fire.add_metric([row.id], row.next_run_at.timestamp())
        yield next_fire
        if workers is not None:
            yield from _worker_families(workers)
            # The workers keep the streaks, in the table: they record the runs' ends.
            yield _streak_family({row.id: row.consecutive_failures for row in rows})

    def _left_out(self, reason: str) -> None:
        if not self._unreadable:
            logger.warning(
                "metrics: the jobs table could not be read; its families are left out",
                extra={"error": reason},
            )
        self._unreadable = True


def _streak_family(streaks: Mapping[str, int]) -> Metric:
    family = GaugeMetricFamily(
        "scheduler_job_consecutive_failures",
        "Failed or timed-out runs in a row since the job's last success.",
        labels=["job_id"],
    )
    for job_id, count in sorted(streaks.items()):
        if count:
            family.add_metric([job_id], count)
    return family


def _worker_families(report: WorkersHealth) -> Iterator[Metric]:
    """Each queue's workers, load and wait, as the workers' heartbeats and the runs say."""
    families = [
        ("scheduler_queue_workers", "Worker processes serving the queue now.", "workers"),
        (
            "scheduler_queue_capacity",
            "Runs of the queue its workers run at once, in all.",
            "capacity",
        ),
        ("scheduler_queue_running", "Runs of the queue in progress on workers.", "running"),
        ("scheduler_queue_waiting", "Runs of the queue due and queued, not started.", "waiting"),
        ("scheduler_queue_later", "Runs of the queue queued for a later time.", "later"),
    ]
    for name, documentation, field in families:
        family = GaugeMetricFamily(name, documentation, labels=["queue"])
        for load in report.queues:
            family.add_metric([load.queue], getattr(load, field))
        yield family
    wait = GaugeMetricFamily(
        "scheduler_queue_oldest_wait_seconds",
        "How long the queue's longest-waiting due run has waited (0 when none waits).",
        labels=["queue"],
    )
    for load in report.queues:
        wait.add_metric([load.queue], load.oldest_wait_seconds or 0.0)
    yield wait
    alive = GaugeMetricFamily(
        "scheduler_workers_healthy", "1 when every queue has a worker serving it, else 0."
    )
    alive.add_metric([], 1 if report.healthy else 0)
    yield alive


LEADER_STATE = LeaderState()
REGISTRY.register(LEADER_STATE)
