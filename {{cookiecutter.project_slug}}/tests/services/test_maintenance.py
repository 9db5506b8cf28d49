"""Maintenance measures the database and the disk, and warns when space runs low."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.core.db import sqlite_path
from app.services.maintenance import run_system_maintenance
from tests.helpers import write_heartbeat


def test_measures_database_and_disk(engine: Engine, tmp_path: Path) -> None:
    for _ in range(20):
        write_heartbeat(engine)
    result = run_system_maintenance(engine, data_dir=tmp_path, warn_below_percent=0)
    assert 0 < result.disk_free_percent <= 100
    assert result.low_disk is False
    database = sqlite_path(engine.url)
    if database is None:
        assert result.database_bytes is None
    else:
        assert result.database_bytes == database.stat().st_size > 0
        wal = database.with_name(database.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0


def test_warns_below_the_threshold(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = run_system_maintenance(engine, data_dir=tmp_path, warn_below_percent=100)
    assert result.low_disk is True
    assert any(r.getMessage() == "free disk space is low" for r in caplog.records)
