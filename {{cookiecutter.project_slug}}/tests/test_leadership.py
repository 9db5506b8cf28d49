"""Leadership across real scheduler processes, each ticking a once-a-second job.

A killed leader is replaced at once (its lock went with it), a frozen one when its lease ends.
Whatever moved the leadership, every scheduled time of the tick has exactly one row.
"""

from __future__ import annotations

import os
import signal
import time

from sqlalchemy import Engine

from app.core.enums import SchedulerState
from tests.helpers import wait_for
from tests.replicas import Cluster, Replica, assert_every_tick_once, lead_and_standby, stop_all


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
