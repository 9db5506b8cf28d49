"""Leadership across real scheduler processes, each ticking a once-a-second job.

A killed leader is replaced at once (its lock went with it), a frozen one when its lease ends,
one whose database sessions were cut as soon as a standby sees its lock free (or it wins
the lock back). Whatever moved
the leadership, every scheduled time of the tick has exactly one row.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from app import ENV_PREFIX
from app.core.enums import SchedulerState
from app.core.health import InstanceInfo
from app.core.models import JobExecution
from app.core.settings import Settings
from tests.conftest import Launcher
from tests.helpers import account_for, wait_for
from tests.test_processes import PROJECT_ROOT, Health
from tests.tick_scheduler import TICK_JOB_ID

Replica = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def replica(start: Launcher, settings: Settings) -> Replica:
    """Starts a tick scheduler; `lease` seconds of leadership, `name` for its sessions."""

    def launch(lease: float = 10.0, name: str | None = None) -> subprocess.Popen[str]:
        env = {
            "PYTHONPATH": str(PROJECT_ROOT),
            f"{ENV_PREFIX}LEADER_LEASE_SECONDS": str(lease),
            f"{ENV_PREFIX}STANDBY_POLL_SECONDS": "0.2",
            f"{ENV_PREFIX}SHUTDOWN_TIMEOUT_SECONDS": "1",
        }
        if name is not None:
            # Names the process's PostgreSQL sessions, so the test can end exactly those.
            url = make_url(settings.database_url).update_query_dict({"application_name": name})
            env[f"{ENV_PREFIX}DATABASE_URL"] = url.render_as_string(hide_password=False)
        return start("tests.tick_scheduler", **env)

    return launch


class Cluster(Health):
    """What the replicas' shared database says about them."""

    def leader_pid(self) -> int | None:
        report = self.report()
        return report.scheduler.pid if report.healthy else None

    def instance(self, pid: int) -> InstanceInfo | None:
        return next((i for i in self.report().scheduler.instances if i.pid == pid), None)

    def state(self, pid: int) -> SchedulerState | None:
        instance = self.instance(pid)
        return instance.state if instance else None

    def ticks_after(self, moment: datetime) -> int:
        with self.engine.connect() as connection:
            return (
                connection.scalar(
                    select(func.count())
                    .select_from(JobExecution)
                    .where(JobExecution.job_id == TICK_JOB_ID, JobExecution.scheduled_at > moment)
                )
                or 0
            )

    def wait_for_ticks(self, count: int) -> None:
        """Wait until `count` more scheduled times of the tick are recorded."""
        now = self.report().checked_at
        wait_for(lambda: self.ticks_after(now) >= count, 30, f"{count} more ticks")


@pytest.fixture
def cluster(fresh_engine: Engine, settings: Settings) -> Cluster:
    return Cluster(fresh_engine, settings)


def lead_and_standby(
    replica: Replica, cluster: Cluster, **options: object
) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
    first = replica(**{k: v for k, v in options.items() if k == "lease"}, name="first")
    wait_for(lambda: cluster.leader_pid() == first.pid, 30, "the first replica to lead")
    second = replica(**{k: v for k, v in options.items() if k == "lease"}, name="second")
    wait_for(lambda: cluster.state(second.pid) == SchedulerState.STANDBY, 30, "a standby replica")
    cluster.wait_for_ticks(2)
    return first, second


def stop_all(*processes: subprocess.Popen[str]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=20)


def assert_every_tick_once(engine: Engine) -> None:
    accounting = account_for(engine, TICK_JOB_ID)
    assert accounting.times >= 4, accounting
    assert accounting.duplicates == [], accounting
    assert accounting.unaccounted == [], accounting


def test_a_killed_leader_is_replaced_before_its_lease_ends(
    replica: Replica, cluster: Cluster, fresh_engine: Engine
) -> None:
    first, second = lead_and_standby(replica, cluster)
    epoch = cluster.report().scheduler.epoch
    assert epoch is not None
    first.kill()
    killed = time.monotonic()
    wait_for(lambda: cluster.leader_pid() == second.pid, 10, "the standby to lead")
    failover = time.monotonic() - killed
    # The lease is 10 s: the dead leader's lock told the standby at once.
    assert failover < 5, f"failover took {failover:.1f} s"
    assert cluster.report().scheduler.epoch == epoch + 1
    cluster.wait_for_ticks(3)
    stop_all(second)
    assert_every_tick_once(fresh_engine)


def test_a_frozen_leader_is_replaced_when_its_lease_ends_then_stands_down(
    replica: Replica, cluster: Cluster, fresh_engine: Engine
) -> None:
    lease = 2.0
    first, second = lead_and_standby(replica, cluster, lease=lease)
    os.kill(first.pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        # The frozen process keeps its lock and its sessions: only the lease's end frees it.
        wait_for(lambda: cluster.leader_pid() == second.pid, lease + 8, "the standby to lead")
        takeover = time.monotonic() - frozen
        cluster.wait_for_ticks(2)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert takeover <= lease + 2, f"took over after {takeover:.1f} s"
    wait_for(
        lambda: cluster.state(first.pid) == SchedulerState.STANDBY, 15, "the old leader to stand by"
    )
    assert cluster.leader_pid() == second.pid
    cluster.wait_for_ticks(3)
    stop_all(first, second)
    assert_every_tick_once(fresh_engine)


def test_ending_the_leaders_sessions_loses_no_tick_and_runs_none_twice(
    replica: Replica, cluster: Cluster, fresh_engine: Engine, settings: Settings
) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("ends PostgreSQL sessions: run by the postgresql variant's suite")
    first, second = lead_and_standby(replica, cluster)

    def end_sessions(name: str) -> int:
        with fresh_engine.connect() as connection:
            ended = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": name},
            ).scalar_one()
            connection.commit()
        return int(ended)

    # A restart of the server, a managed failover or a proxy's idle timeout does this. The
    # standby usually takes over; the leader may also win its lock back first. Either way
    # the ticks go on, each recorded once.
    names = {first.pid: "first", second.pid: "second"}
    for _ in range(2):
        leader = cluster.leader_pid()
        assert leader in names
        assert end_sessions(names[leader]) >= 1
        cluster.wait_for_ticks(3)
    stop_all(first, second)
    assert_every_tick_once(fresh_engine)
