"""PostgreSQL only: the leader's database sessions end, as a server restart, a managed failover
or a proxy's idle timeout ends them. A standby takes over as soon as it sees the leader's lock
free (or the leader wins it back first); no tick is lost and none runs twice.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from tests.replicas import Cluster, Replica, assert_every_tick_once, lead_and_standby, stop_all


def test_ending_the_leaders_sessions_loses_no_tick_and_runs_none_twice(
    replica: Replica, cluster: Cluster, fresh_engine: Engine
) -> None:
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
