"""Scheduler replicas for the leadership tests: started, watched and counted.

Each replica is `benchmarks/replica.py`, the project's scheduler with a once-a-second tick.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from app import ENV_PREFIX
from app.core.enums import SchedulerState
from app.core.health import InstanceInfo
from app.core.settings import Settings
from benchmarks.replica import TICK_JOB_ID, account_for, succeeded_since
from tests.conftest import Launcher
from tests.helpers import wait_for
from tests.test_processes import PROJECT_ROOT, Health

Replica = Callable[..., subprocess.Popen[str]]


def replica_launcher(start: Launcher, settings: Settings) -> Replica:
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
        return start("benchmarks.replica", **env)

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

    def wait_for_ticks(self, count: int) -> None:
        """Wait until `count` more scheduled times of the tick have run."""
        since = self.report().checked_at
        wait_for(lambda: succeeded_since(self.engine, since) >= count, 30, f"{count} more ticks")


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
    assert accounting.times >= 5, accounting
    assert accounting.duplicates == [], accounting
    assert accounting.unaccounted == [], accounting
