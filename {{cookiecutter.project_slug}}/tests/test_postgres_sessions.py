"""PostgreSQL only: the leader's database sessions end, as a server restart, a managed failover
or a proxy's idle timeout ends them. A standby takes over as soon as it sees the leader's lock
free (or the leader wins it back first); no tick is lost and none runs twice.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from app.core import db
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


def _end_pooled_session(pooled: Engine, other: Engine) -> int:
    """Use a connection of `pooled`, give it back, and end its server session, as a restart
    does; the session's process id."""
    with pooled.connect() as connection:
        pid = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
    with other.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    return pid


def _session_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_pooled_connection_is_pinged_before_use_only_once_it_has_sat_idle(
    fresh_engine: Engine, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Idle longer than it is trusted for: pinged, found dropped, replaced by a new session.
    monkeypatch.setattr(db, "TRUSTED_FOR_SECONDS", 0.0)
    ended = _end_pooled_session(fresh_engine, engine)
    assert _session_pid(fresh_engine) != ended

    # Given back just now: handed out without the round trip of a ping, so a session ended
    # within that time fails its statement (and the pool starts afresh).
    monkeypatch.setattr(db, "TRUSTED_FOR_SECONDS", 3600.0)
    _end_pooled_session(fresh_engine, engine)
    with pytest.raises(OperationalError):
        _session_pid(fresh_engine)
    assert _session_pid(fresh_engine) > 0
