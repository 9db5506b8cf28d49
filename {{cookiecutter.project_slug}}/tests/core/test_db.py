"""The SQLite file is created on first use, private and in WAL mode; timestamps stay UTC."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError

from app.components.scheduler.leader import leader_lock
from app.core.db import create_db_engine, session_scope, sqlite_path
from app.core.enums import SchedulerState
from app.core.migrations import upgrade
from app.core.models import SchedulerInstance


def test_sqlite_file_and_folder_are_created_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "app.db"
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            mode = connection.execute(text("PRAGMA journal_mode")).scalar_one()
        assert path.exists()
        assert mode == "wal"
    finally:
        engine.dispose()


def test_the_database_and_its_companions_are_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "data" / "app.db"
    previous = os.umask(0)
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        lock = leader_lock(engine)
        assert lock.try_acquire()
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE written (id INTEGER)"))
        companions = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        lock.release()
    finally:
        os.umask(previous)
        engine.dispose()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    suffixes = ("", "-wal", "-shm", ".migrate-lock", ".scheduler-lock")
    assert set(companions) == {f"app.db{suffix}" for suffix in suffixes}
    assert set(companions.values()) == {0o600}


def test_missing_file_is_not_created_when_creation_is_off(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'absent.db'}", create_file=False)
    with pytest.raises(OperationalError, match="unable to open database file"):
        engine.connect()
    assert not (tmp_path / "absent.db").exists()


def test_sqlite_path_only_for_sqlite_files() -> None:
    assert sqlite_path("sqlite:///data/app.db") == Path("data/app.db")
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("postgresql+psycopg://u@localhost/db") is None


def test_times_round_trip_as_aware_utc(engine: Engine) -> None:
    paris_noon = datetime(2026, 7, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(engine) as session:
        session.add(
            SchedulerInstance(
                instance_id="x",
                hostname="h",
                pid=1,
                started_at=paris_noon,
                last_seen=paris_noon,
                state=SchedulerState.RUNNING,
                job_count=0,
            )
        )
    with session_scope(engine) as session:
        stored = session.scalars(select(SchedulerInstance.started_at)).one()
    assert stored == paris_noon
    assert stored.tzinfo == UTC


def test_naive_times_are_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="naive datetime"), session_scope(engine) as session:
        session.add(
            SchedulerInstance(
                instance_id="y",
                hostname="h",
                pid=1,
                started_at=datetime(2026, 1, 1),  # noqa: DTZ001
                last_seen=datetime(2026, 1, 1),  # noqa: DTZ001
                state=SchedulerState.RUNNING,
                job_count=0,
            )
        )
