"""Only one scheduler per database holds the leader lock (the lease's fast signal)."""

from __future__ import annotations

from sqlalchemy import Engine

from app.components.scheduler.leader import leader_lock
from app.core.db import create_db_engine
from app.core.settings import Settings


def test_only_one_holder_at_a_time(settings: Settings, engine: Engine) -> None:
    other_engine = create_db_engine(settings.database_url)
    first, second = leader_lock(engine), leader_lock(other_engine)
    try:
        assert first.try_acquire()
        assert first.holds()
        assert first.try_acquire(), "taking a held lock again is a no-op"
        assert not second.try_acquire()
        assert not second.holds()
        first.release()
        assert not first.holds()
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()
        other_engine.dispose()
